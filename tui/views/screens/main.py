"""The main screen: connections (or, after ``tab``, every request) on the left; the selected
connection's exchanges and the selected exchange (or the raw bytes) on the right; the filter
prompt (or the find prompt) and status bar below.

The screen is put together from one class per idea: ``FollowingPanes`` (what the selection
shows, and following live traffic), ``FilterKeys``, ``ExportKeys`` (copy and write),
``RequestsViewKeys`` (``tab``) and ``FindKeys`` (``f``, ``n``, ``N``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical

from tui.model.bodies import BODY_MODES, BodyMode
from tui.model.endpoints import EndpointKey, EndpointTable
from tui.model.filters import Filter, parse_filter, regex_escape
from tui.model.find import FindTexts, Needle, ScanAround
from tui.model.flows import Connection, ConnectionKey, Exchange
from tui.model.store import Store
from tui.views.pending import PendingChanges
from tui.views.screens.exporting import ExportKeys
from tui.views.screens.filtering import FilterKeys, as_word
from tui.views.screens.finding import FindKeys
from tui.views.screens.following import FollowingPanes
from tui.views.screens.panes import PanesScreen
from tui.views.screens.requests_view import LeftView, RequestsViewKeys
from tui.views.widgets.detail import DetailPane
from tui.views.widgets.filter_bar import FilterBar
from tui.views.widgets.find_bar import FindBar
from tui.views.widgets.keys_footer import KeysFooter
from tui.views.widgets.status_bar import StatusBar, StatusLine, ViewMode
from tui.views.widgets.tables import ConnectionsTable, ExchangesTable, RequestsTable

Clock = Callable[[], float]


class MainScreen(
    FollowingPanes, FilterKeys, ExportKeys, RequestsViewKeys, FindKeys, PanesScreen[None]
):
    """The bindings, the panes and what the app feeds them; the keys of each idea live in
    the classes it is made of (the selection, the filter, copying and writing, the requests
    view, find)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Priority: the app handles "/" itself before reading the next key, so what is typed
        # right after it (a fast typist, a paste) lands in the prompt.
        Binding(
            "slash",
            "open_filter",
            "Filter",
            key_display="/",
            id="main.filter",
            priority=True,
            tooltip="Type a filter expression (~m ~p ~h ~c ~src ~pod ~b …); ? lists them",
        ),
        Binding(
            "exclamation_mark",
            "invert",
            "Invert",
            key_display="!",
            id="main.invert",
            tooltip="Show what the filter hides, and hide what it shows",
        ),
        Binding(
            "escape",
            "back",
            "Back/clear",
            key_display="esc",
            id="main.back",
            tooltip="Leave the raw view, go back to the connections, or clear the filter",
        ),
        Binding(
            "h",
            "headers",
            "Headers",
            id="main.headers",
            tooltip="Every request header seen, ranked as a traffic-filter key",
        ),
        Binding(
            "H",
            "toggle_noise",
            "Noise",
            key_display="H",
            id="main.noise",
            tooltip="Hide or show health probes and metrics scrapes",
        ),
        Binding(
            "space",
            "toggle_pause",
            "Pause",
            key_display="space",
            id="main.pause",
            tooltip="Freeze the screen, or follow the newest traffic again",
        ),
        Binding(
            "r", "toggle_raw", "Raw", id="main.raw", tooltip="The connection's bytes as text or hex"
        ),
        Binding(
            "s",
            "toggle_secrets",
            "Secrets",
            id="main.secrets",
            tooltip="Reveal or mask secrets: credentials in headers, URLs and bodies",
        ),
        Binding(
            "c",
            "copy_curl",
            "Copy curl",
            id="main.copy_curl",
            tooltip="Copy the selected request as a curl command",
        ),
        Binding(
            "m",
            "copy_mirrord",
            "Copy mirrord",
            id="main.copy_mirrord",
            tooltip="Copy a mirrord config that steals traffic like the selected request",
        ),
        Binding(
            "tab",
            "switch_view",
            "View",
            key_display="tab",
            id="main.switch_view",
            tooltip="Switch the left pane between connections and every request",
        ),
        Binding(
            "e",
            "endpoints",
            "Endpoints",
            id="main.endpoints",
            tooltip="Requests, rate, errors and latency per endpoint",
        ),
        # Priority, like "/": what is typed right after it lands in the prompt.
        Binding(
            "f",
            "find",
            "Find",
            id="main.find",
            priority=True,
            tooltip="Find text in the request's headers and bodies (n/N: next/previous)",
        ),
        Binding(
            "n",
            "find_next(True)",
            "Next match",
            show=False,
            id="main.find_next",
            tooltip="The next match, in the next request that has one past the last",
        ),
        Binding(
            "N",
            "find_next(False)",
            "Previous match",
            key_display="N",
            show=False,
            id="main.find_previous",
            tooltip="The previous match, going back likewise",
        ),
        Binding(
            "v",
            "cycle_body_view",
            "Body",
            id="main.body_view",
            tooltip="Show bodies as: auto, JSON, XML/HTML, form, multipart, text, hex",
        ),
        Binding(
            "ctrl+l",
            "clear",
            "Clear",
            show=False,
            id="main.clear",
            tooltip="Forget every connection seen so far",
        ),
        Binding(
            "w",
            "write_file",
            "Write",
            show=False,
            id="main.write_file",
            tooltip="Write the connections shown to a .har, .jsonl or .pcap file",
        ),
        Binding(
            "enter,right",
            "focus_exchanges",
            "Requests",
            show=False,
            id="main.requests",
            tooltip="Move to the selected connection's requests",
        ),
    ]

    def __init__(
        self,
        store: Store,
        clock: Clock,
        target: str,
        *,
        endpoints: EndpointTable | None = None,
        endpoints_now: Clock | None = None,
    ) -> None:
        super().__init__(id="main")
        self.store = store
        self.clock = clock
        self.target = target
        self.endpoints = endpoints if endpoints is not None else EndpointTable()
        self.endpoints_now = endpoints_now or clock
        """What "now" is for rates: the clock, or the end of a recording."""
        self.left_view: LeftView = "connections"
        self.body_mode: BodyMode = "auto"
        self.needle: Needle | None = None
        self._requests_stale = False
        self._requests_drawn = 0.0
        self._requests_outdated = True
        """The store changed since the requests view's list was made (in either view)."""
        self._wanted_exchange: tuple[ConnectionKey, int] | None = None
        self._scan: ScanAround | None = None
        self._warming: tuple[list[Exchange], int] | None = None
        self.find_texts = FindTexts()
        self.mode: ViewMode = "following"
        self.raw_mode = False
        self.reveal_secrets = False
        self.filter_text = ""
        self._filter_before_edit: tuple[str, Filter | None] = ("", None)
        self._held = PendingChanges()
        self._shown_exchange: Exchange | None = None
        self._feed_status = (0.0, False)
        self._right_panes_stale = False
        self._right_panes_drawn = 0.0
        self._typed_filter: tuple[str, Filter | None] | None = None
        self._typed_filter_applied = 0.0
        # Made here, not looked up: the app may draw while the screen is being torn down.
        self.connections_table = ConnectionsTable(clock, id="connections")
        self.exchanges_table = ExchangesTable(id="exchanges")
        self.requests_table = RequestsTable(self._protocol_of, id="requests")
        self.find_bar = FindBar(id="find-bar")
        self.detail = DetailPane(id="detail")
        self.filter_bar = FilterBar(id="filter-bar")
        self.status_bar = StatusBar(id="status")

    def compose(self) -> ComposeResult:
        with Horizontal(id="panes"):
            yield self.connections_table
            yield self.requests_table
            with Vertical(id="right"):
                yield self.exchanges_table
                yield self.detail
        yield self.filter_bar
        yield self.find_bar
        yield self.status_bar
        yield KeysFooter(compact=True)

    def on_mount(self) -> None:
        self.connections_table.border_title = "connections"
        self.exchanges_table.border_title = "requests"
        self.requests_table.border_title = "every request, newest first"
        self.requests_table.display = False
        self.detail.border_title = "detail"
        self.connections_table.focus()
        self._draw_detail()

    # -- what is selected -----------------------------------------------------------------

    @property
    def selected_connection(self) -> Connection | None:
        if self.left_view == "requests":
            exchange = self.requests_table.cursor_value
            return None if exchange is None else self.store.get(exchange.key)
        key = self.connections_table.cursor_key
        return None if key is None else self.store.get(key)

    @property
    def selected_exchange(self) -> Exchange | None:
        if self.left_view == "requests":
            return self.requests_table.cursor_value
        return self.exchanges_table.cursor_value

    @property
    def left_table(self) -> ConnectionsTable | RequestsTable:
        return self.requests_table if self.left_view == "requests" else self.connections_table

    def _protocol_of(self, key: ConnectionKey) -> str:
        connection = self.store.get(key)
        return "" if connection is None else connection.protocol

    # -- fed by the app -------------------------------------------------------------------

    def show_changes(self, changes: PendingChanges) -> None:
        """Draw what changed since the last refresh (held back while paused)."""
        if not changes.empty:
            self._requests_outdated = True
        if self.mode == "paused":
            self._merge_held(changes)
            return
        if self.left_view == "requests":
            self._show_request_changes(changes)
            return
        table = self.connections_table
        one_local_source = set(self.store.sources) <= {"local"}
        table.hidden_columns = {"pod"} if one_local_source else set()
        table.empty_text = self._no_connections_text()
        if changes.view_changed or changes.everything:
            table.show(self.store.visible_connections(), stick_to_first=self.mode == "following")
        elif changes.connections:
            table.refresh_rows()
        selected = table.cursor_key
        if self.mode == "following" and not changes.everything:
            if selected is not None and selected in changes.connections:
                self._right_panes_stale = True
            self.catch_up()
            return
        if changes.everything or (selected is not None and selected in changes.connections):
            self._load_exchanges(stick_to_first=self.exchanges_table.cursor_row == 0)
        shown = self._shown_exchange
        if (
            changes.everything
            or (shown is not None and shown in changes.exchanges)
            or ((self.raw_mode or shown is None) and selected in changes.connections)
        ):
            self._draw_detail(keep_scroll=True)

    def refresh_ages(self) -> None:
        if self.mode != "paused":
            self.connections_table.refresh_rows()

    def show_status(self, events_per_second: float, stream_ended: bool) -> None:
        self._feed_status = (events_per_second, stream_ended)
        if stream_ended and not self.connections_table.rows:
            # Waiting would be a false promise once nothing more can come (an empty recording).
            self.connections_table.empty_text = self._no_connections_text()
            self.connections_table.refresh_rows()
        self._draw_status()

    def _no_connections_text(self) -> str:
        if self.store.filter is not None or self.store.hide_noise:
            return "no connection matches the filter (esc clears it)"
        if self._feed_status[1]:
            return "no connections: the stream has ended"
        return "waiting for connections…"

    def _draw_status(self) -> None:
        events_per_second, stream_ended = self._feed_status
        store = self.store
        agents = [s for s in store.sources.values() if s.kind == "agent"]
        pods = [s for s in store.sources.values() if s.kind == "pod"]
        line = StatusLine(
            target=self.target,
            agents_live=sum(1 for s in agents if s.state == "live"),
            agents_total=len(agents),
            pods_live=sum(1 for s in pods if s.state == "live"),
            pods_total=len(pods),
            reconnecting=tuple(n for n, s in store.sources.items() if s.state == "reconnecting"),
            failed=tuple(
                f"{name}: {s.detail or s.state}"
                for name, s in store.sources.items()
                if s.state in ("failed", "gone")
            ),
            events_per_second=events_per_second,
            gaps=store.stats.gaps,
            kernel_drops=store.stats.kernel_drops,
            lost_events=store.stats.lost_events,
            losses=store.losses.short(),
            dropped_connections=store.dropped_connections,
            dropped_exchanges=store.dropped_exchanges,
            shown_connections=len(self.connections_table.rows),
            total_connections=len(store.connections),
            filter_text=self.filter_text,
            inverted=store.inverted,
            hide_noise=store.hide_noise,
            mode=self.mode,
            stream_ended=stream_ended,
            left_view=self.left_view,
            shown_requests=len(self.requests_table.rows),
        )
        self.status_bar.show(line)

    def _merge_held(self, changes: PendingChanges) -> None:
        held = self._held
        held.count += changes.count
        held.view_changed |= changes.view_changed
        held.everything |= changes.everything
        held.connections |= changes.connections
        held.exchanges |= changes.exchanges

    # -- other keys -----------------------------------------------------------------------

    def action_back(self) -> None:
        if self.raw_mode:
            self.action_toggle_raw()
        elif self.focused is not self.left_table:
            self.left_table.focus()
        elif self.store.filter is not None:
            self._set_filter("", None)
        elif self.mode != "following":
            self.action_toggle_pause()

    def action_focus_exchanges(self) -> None:
        if self.left_view == "requests":
            if self.requests_table.rows:
                self._stop_following()
                self.detail.focus()
            return
        if self.focused is self.connections_table and self.exchanges_table.rows:
            self._stop_following()
            self.exchanges_table.focus()

    def action_toggle_noise(self) -> None:
        self.store.hide_noise = not self.store.hide_noise
        self._redraw_all()  # the status bar says "noise hidden"

    def action_toggle_pause(self) -> None:
        if self.mode == "paused" or self.mode == "browsing":
            self.mode = "following"
            held, self._held = self._held, PendingChanges()
            held.view_changed = True
            self.show_changes(held)
            if self.left_view == "requests":
                self._load_requests()
            self.left_table.move_cursor_to(0)
        else:
            self.mode = "paused"
        self._draw_status()

    def action_toggle_raw(self) -> None:
        self.raw_mode = not self.raw_mode
        self._draw_detail()

    def action_toggle_secrets(self) -> None:
        self.reveal_secrets = not self.reveal_secrets
        self.exchanges_table.reveal_secrets = self.reveal_secrets
        self.requests_table.reveal_secrets = self.reveal_secrets
        # Find looks through what is shown: the texts it kept are masked (or not) no longer.
        self.find_texts.show_secrets(self.reveal_secrets)
        if self.needle is not None:
            self._start_warming()
        self.exchanges_table.refresh_rows()
        self.requests_table.refresh_rows()
        self._draw_detail(keep_scroll=True)

    def action_clear(self) -> None:
        self.store.clear()
        self.endpoints.clear()
        self.find_texts.clear()
        self._warming = None
        self.mode = "following"
        self._held = PendingChanges()
        self.show_changes(PendingChanges.full())
        self._draw_status()
        self.notify("Cleared: showing new traffic only.")

    # -- endpoints, body views ------------------------------------------------------------

    def action_endpoints(self) -> None:
        from tui.views.screens.endpoints import EndpointsScreen

        self.app.push_screen(
            EndpointsScreen(self.endpoints, self.endpoints_now), self._endpoint_chosen
        )

    def _endpoint_chosen(self, chosen: EndpointKey | None) -> None:
        if chosen is None:
            return
        method, route = chosen
        text = f"~m {as_word(regex_escape(method))} & ~route {as_word(route)}"
        self._set_filter(text, parse_filter(text))
        if self.left_view != "requests":
            self.action_switch_view()

    def action_cycle_body_view(self) -> None:
        self.body_mode = BODY_MODES[(BODY_MODES.index(self.body_mode) + 1) % len(BODY_MODES)]
        self._draw_detail(keep_scroll=True)
