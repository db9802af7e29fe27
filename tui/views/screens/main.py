"""The main screen: connections (or, after ``tab``, every request) on the left; the selected
connection's exchanges and the selected exchange (or the raw bytes) on the right; the filter
prompt (or the find prompt) and status bar below."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical

from tui.model.bodies import BODY_MODES, BodyMode
from tui.model.curl import as_curl
from tui.model.endpoints import EndpointKey, EndpointTable
from tui.model.filters import Filter, parse_filter, quote, regex_escape
from tui.model.find import Needle, ScanAround
from tui.model.flows import Connection, ConnectionKey, Exchange
from tui.model.secrets import mask
from tui.model.store import Store
from tui.model.terminal_text import one_line, terminal_safe
from tui.views.pending import PendingChanges
from tui.views.screens.finding import FindKeys
from tui.views.screens.headers import ChosenFilter, HeaderInventoryScreen
from tui.views.screens.requests_view import LeftView, RequestsViewKeys
from tui.views.widgets.detail import DetailPane, connection_facts, exchange_view, raw_view
from tui.views.widgets.filter_bar import FilterBar
from tui.views.widgets.find_bar import FindBar
from tui.views.widgets.keys_footer import KeysFooter
from tui.views.widgets.live_table import LiveTable
from tui.views.widgets.status_bar import StatusBar, StatusLine, ViewMode
from tui.views.widgets.tables import (
    ConnectionsTable,
    ExchangesTable,
    RequestsTable,
)

Clock = Callable[[], float]

FILTER_PACE = 0.15
"""Seconds between re-filterings while an expression is being typed."""

FOLLOW_INTERVAL = 0.5
"""Seconds between redraws of the request list and detail while following live traffic."""


def as_word(text: str) -> str:
    """``text`` as one filter argument: bare when it can be, else quoted."""
    bare = text and not any(ch.isspace() or ch in "()!&|\"'" for ch in text)
    return text if bare else quote(text)


class MainScreen(RequestsViewKeys, FindKeys):
    BINDINGS: ClassVar[list[BindingType]] = [
        # Priority: the app handles "/" itself before reading the next key, so what is typed
        # right after it (a fast typist, a paste) lands in the prompt.
        Binding("slash", "open_filter", "Filter", key_display="/", id="main.filter",
                priority=True,
                tooltip="Type a filter expression (~m ~p ~h ~c ~src ~pod ~b …); ? lists them"),
        Binding("exclamation_mark", "invert", "Invert", key_display="!", id="main.invert",
                tooltip="Show what the filter hides, and hide what it shows"),
        Binding("escape", "back", "Back/clear", key_display="esc", id="main.back",
                tooltip="Leave the raw view, go back to the connections, or clear the filter"),
        Binding("h", "headers", "Headers", id="main.headers",
                tooltip="Every request header seen, ranked as a traffic-filter key"),
        Binding("H", "toggle_noise", "Noise", key_display="H", id="main.noise",
                tooltip="Hide or show health probes and metrics scrapes"),
        Binding("space", "toggle_pause", "Pause", key_display="space", id="main.pause",
                tooltip="Freeze the screen, or follow the newest traffic again"),
        Binding("r", "toggle_raw", "Raw", id="main.raw",
                tooltip="The connection's bytes as text or hex"),
        Binding("s", "toggle_secrets", "Secrets", id="main.secrets",
                tooltip="Reveal or mask secrets: credentials in headers, URLs and bodies"),
        Binding("c", "copy_curl", "Copy curl", id="main.copy_curl",
                tooltip="Copy the selected request as a curl command"),
        Binding("m", "copy_mirrord", "Copy mirrord", id="main.copy_mirrord",
                tooltip="Copy a mirrord config that steals traffic like the selected request"),
        Binding("tab", "switch_view", "View", key_display="tab", id="main.switch_view",
                tooltip="Switch the left pane between connections and every request"),
        Binding("e", "endpoints", "Endpoints", id="main.endpoints",
                tooltip="Requests, rate, errors and latency per endpoint"),
        # Priority, like "/": what is typed right after it lands in the prompt.
        Binding("f", "find", "Find", id="main.find", priority=True,
                tooltip="Find text in the request's headers and bodies (n/N: next/previous)"),
        Binding("n", "find_next(True)", "Next match", show=False, id="main.find_next",
                tooltip="The next match, in the next request that has one past the last"),
        Binding("N", "find_next(False)", "Previous match", key_display="N", show=False,
                id="main.find_previous", tooltip="The previous match, going back likewise"),
        Binding("v", "cycle_body_view", "Body", id="main.body_view",
                tooltip="Show bodies as: auto, JSON, XML/HTML, form, multipart, text, hex"),
        Binding("ctrl+l", "clear", "Clear", show=False, id="main.clear",
                tooltip="Forget every connection seen so far"),
        Binding("w", "write_file", "Write", show=False, id="main.write_file",
                tooltip="Write the connections shown to a .har, .jsonl or .pcap file"),
        Binding("enter,right", "focus_exchanges", "Requests", show=False, id="main.requests",
                tooltip="Move to the selected connection's requests"),
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
        self._wanted_exchange: tuple[ConnectionKey, int] | None = None
        self._scan: ScanAround | None = None
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
        if self.mode == "paused":
            self._merge_held(changes)
            return
        if self.left_view == "requests":
            self._show_request_changes(changes)
            return
        table = self.connections_table
        one_local_source = set(self.store.sources) <= {"local"}
        table.hidden_columns = {"pod"} if one_local_source else set()
        narrowed = self.store.filter is not None or self.store.hide_noise
        table.empty_text = ("no connection matches the filter (esc clears it)" if narrowed
                            else "waiting for connections…")
        if changes.view_changed or changes.everything:
            table.show(self.store.visible_connections(), stick_to_first=self.mode == "following")
        elif changes.connections:
            table.refresh()
        selected = table.cursor_key
        if self.mode == "following" and not changes.everything:
            if selected is not None and selected in changes.connections:
                self._right_panes_stale = True
            self.catch_up()
            return
        if changes.everything or (selected is not None and selected in changes.connections):
            self._load_exchanges(stick_to_first=self.exchanges_table.cursor_row == 0)
        shown = self._shown_exchange
        if changes.everything or (shown is not None and shown in changes.exchanges) or (
            (self.raw_mode or shown is None) and selected in changes.connections
        ):
            self._draw_detail(keep_scroll=True)

    def refresh_ages(self) -> None:
        if self.mode != "paused":
            self.connections_table.refresh()

    def show_status(self, events_per_second: float, stream_ended: bool) -> None:
        self._feed_status = (events_per_second, stream_ended)
        self._draw_status()

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
                f"{name}: {s.detail or s.state}" for name, s in store.sources.items()
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

    # -- selection ------------------------------------------------------------------------

    @on(LiveTable.Highlighted, "#connections")
    def _connection_highlighted(self, event: LiveTable.Highlighted) -> None:
        if event.by_data and self.mode == "following":
            self._follow_right_panes()
            return
        self._load_exchanges(stick_to_first=True)
        self._draw_detail()

    @on(LiveTable.Highlighted, "#exchanges")
    def _exchange_highlighted(self, event: LiveTable.Highlighted) -> None:
        if event.by_data and self.mode == "following":
            self._follow_right_panes()
            return
        if self.selected_exchange is not self._shown_exchange:
            self._draw_detail()

    def catch_up(self, *, now: bool = False) -> None:
        """Apply a filter typed meanwhile, and redraw the right panes if following left them
        behind (``now``: whatever the pace)."""
        self.apply_typed_filter()
        if self._requests_stale and self.mode != "paused" and (
            now or time.monotonic() - self._requests_drawn >= FOLLOW_INTERVAL
        ):
            self._load_requests()
        if self._right_panes_stale and self.mode == "following":
            self._follow_right_panes(force=now)

    def _follow_right_panes(self, *, force: bool = False) -> None:
        """While following, the request list and detail show the newest traffic at most
        every FOLLOW_INTERVAL: nobody reads a request replaced ten times a second, and
        drawing it is half of what a refresh costs under load."""
        now = time.monotonic()
        if not force and now - self._right_panes_drawn < FOLLOW_INTERVAL:
            self._right_panes_stale = True
            return
        self._right_panes_stale = False
        self._right_panes_drawn = now
        self._load_exchanges(stick_to_first=True)
        self._draw_detail(keep_scroll=True)

    @on(LiveTable.Moved, "#connections")
    def _connections_moved(self, event: LiveTable.Moved) -> None:
        self._wanted_exchange = None  # the user chose where to go, not find
        if self.mode != "paused":
            self.mode = "following" if event.at_first_row else "browsing"
            self._draw_status()

    @on(LiveTable.Moved, "#exchanges")
    def _exchanges_moved(self, event: LiveTable.Moved) -> None:
        self._stop_following()

    def _stop_following(self) -> None:
        """The user is reading one connection's requests: keep them where they are."""
        if self.mode == "following":
            self.mode = "browsing"
            self._draw_status()

    def _load_exchanges(self, *, stick_to_first: bool) -> None:
        key = self.connections_table.cursor_key
        exchanges = [] if key is None else self.store.visible_exchanges(key)
        exchanges.reverse()
        self.exchanges_table.show(exchanges, stick_to_first=stick_to_first)
        if self._wanted_exchange is not None:
            # Find moved to a request of this connection: keep the cursor on it.
            self.exchanges_table.select_key(self._wanted_exchange)

    def _draw_detail(self, *, keep_scroll: bool = False) -> None:
        connection = self.selected_connection
        exchange = self.selected_exchange
        if exchange is not None and connection is not None and exchange.key != connection.key:
            exchange = None
        self._shown_exchange = exchange
        if connection is None:
            self.detail.show(NOTHING_SELECTED)
        elif self.raw_mode or (exchange is None and connection.protocol != "http"):
            self.detail.show(raw_view(connection, reveal=self.reveal_secrets),
                             keep_scroll=keep_scroll)
        elif exchange is None:
            self.detail.show(connection_facts(connection), keep_scroll=keep_scroll)
        else:
            self.detail.show(exchange_view(exchange, connection, reveal=self.reveal_secrets,
                                           mode=self.body_mode),
                             keep_scroll=keep_scroll)
        self._draw_detail_subtitle()

    def _draw_detail_subtitle(self) -> None:
        notes = ["raw" if self.raw_mode else ("secrets shown" if self.reveal_secrets else "")]
        if self.body_mode != "auto":
            notes.append(f"bodies: {self.body_mode}")
        if self.needle is not None:
            detail = self.detail
            where = "" if detail.current_match is None else f"{detail.current_match + 1}/"
            notes.append(f"find {self.needle.text!r}: {where}{detail.match_count}")
        self.detail.border_subtitle = "  ".join(note for note in notes if note)

    # -- filter ---------------------------------------------------------------------------

    def action_open_filter(self) -> None:
        if self.find_bar.is_open:
            self.find_bar.input.post_message(events.Key("slash", "/"))
            return
        if self.filter_bar.is_open:
            # The priority binding caught a "/" typed in the expression: it is a character.
            # Queued behind the keys before it, so it lands in order. (Disabling the binding
            # instead would change, and so rebuild, the footer.)
            self.filter_bar.input.post_message(events.Key("slash", "/"))
            return
        self._filter_before_edit = (self.filter_text, self.store.filter)
        self.filter_bar.open(self.filter_text)

    @on(FilterBar.Applied)
    def _filter_applied(self, event: FilterBar.Applied) -> None:
        # Narrow the list as the user types, but at a pace: re-filtering everything at each
        # keystroke would make a fast typist wait for the screen.
        self._typed_filter = (event.text, event.filter)
        if time.monotonic() - self._typed_filter_applied >= FILTER_PACE:
            self.apply_typed_filter()

    def apply_typed_filter(self) -> None:
        if self._typed_filter is not None:
            typed, self._typed_filter = self._typed_filter, None
            self._typed_filter_applied = time.monotonic()
            self._set_filter(*typed)

    @on(FilterBar.Closed)
    def _filter_closed(self, event: FilterBar.Closed) -> None:
        if event.accepted:
            self.apply_typed_filter()
        else:
            self._typed_filter = None
            self._set_filter(*self._filter_before_edit)
        self.filter_bar.close(self.filter_text)
        self.left_table.focus()

    def _set_filter(self, text: str, parsed: Filter | None) -> None:
        self.filter_text = text if parsed is not None else ""
        self.store.set_filter(parsed, invert=self.store.inverted and parsed is not None)
        if not self.filter_bar.is_open:
            self.filter_bar.close(self.filter_text)
        self._redraw_all()

    def action_invert(self) -> None:
        if self.store.filter is None:
            self.notify("No filter to invert: press / to type one first.", severity="warning")
            return
        self.store.set_filter(self.store.filter, invert=not self.store.inverted)
        self._redraw_all()

    def _redraw_all(self) -> None:
        if self.mode == "paused":
            self.mode = "following"
        self.show_changes(PendingChanges.full())
        self._draw_status()

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

    def action_headers(self) -> None:
        def chosen(choice: ChosenFilter | None) -> None:
            if choice is not None:
                self._set_filter(choice.text, choice.parsed)
                # The expression quotes a header value from the network: plain, escaped text.
                self.notify(one_line(choice.text), title="Filter", markup=False)

        self.app.push_screen(HeaderInventoryScreen(self.store), chosen)

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
        self.exchanges_table.refresh()
        self.requests_table.refresh()
        self._draw_detail(keep_scroll=True)

    def action_clear(self) -> None:
        self.store.clear()
        self.endpoints.clear()
        self.mode = "following"
        self._held = PendingChanges()
        self.show_changes(PendingChanges.full())
        self._draw_status()
        self.notify("Cleared: showing new traffic only.")

    def action_write_file(self) -> None:
        from tui.views.screens.write_file import WriteFileScreen

        def written(sentence: str | None) -> None:
            if sentence:
                self.notify(one_line(sentence), title="Written", markup=False)

        self.app.push_screen(WriteFileScreen(self.store, self.target, reveal=self.reveal_secrets,
                                             now=self.clock()), written)

    def action_copy_curl(self) -> None:
        exchange, connection = self.selected_exchange, self.selected_connection
        if exchange is None or connection is None:
            self.notify("Select an HTTP request to copy it as curl.", severity="warning")
            return
        # One policy: the clipboard gets secrets only when they are revealed (s).
        command = as_curl(exchange, connection, masked=not self.reveal_secrets)
        self.app.copy_to_clipboard(command)
        title = "Copied as curl" if self.reveal_secrets else "Copied as curl (secrets masked: s)"
        self.notify(terminal_safe(command), title=title, markup=False)

    def action_copy_mirrord(self) -> None:
        inventory = self.store.header_inventory
        exchange = self.selected_exchange
        ranked = [stats.name for stats in inventory.names_by_usefulness()]
        choice: tuple[str, str] | None = None
        if exchange is not None:
            for name in ranked:
                value = exchange.request.header(name)
                if value is not None:
                    choice = (name, value)
                    break
        if choice is None:
            self.notify("Select a request that carries a header to filter on (or press h).",
                        severity="warning")
            return
        name, value = choice
        self.app.copy_to_clipboard(inventory.mirrord_config(name, value))
        shown = inventory.mirrord_filter(name, value)
        if not self.reveal_secrets:
            shown = shown.replace(value, mask(name, value))
        self.notify(one_line(shown), title="Copied mirrord config for", markup=False)

    # -- endpoints, body views (the requests view: RequestsViewKeys; find: FindKeys) --------

    def action_endpoints(self) -> None:
        from tui.views.screens.endpoints import EndpointsScreen

        self.app.push_screen(EndpointsScreen(self.endpoints, self.endpoints_now),
                             self._endpoint_chosen)

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


NOTHING_SELECTED = "Select a connection (↑/↓) to see its requests; / filters, ? lists every key."
