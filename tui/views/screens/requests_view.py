"""The requests view, the main screen's other left pane (``tab``): every request the filter
lets through, across connections and pods, newest first; the detail pane follows its cursor.

The list is a walk over the store (100,000 requests in a few tens of milliseconds): it is
made again at most twice a second while traffic flows, and at once when the filter changes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from textual import on
from textual.screen import Screen

from tui.model.flows import Connection, Exchange
from tui.model.store import Store
from tui.views.pending import PendingChanges
from tui.views.widgets.filter_bar import FilterBar
from tui.views.widgets.find_bar import FindBar
from tui.views.widgets.live_table import LiveTable
from tui.views.widgets.tables import ConnectionsTable, ExchangesTable, RequestsTable, exchange_key

if TYPE_CHECKING:
    from tui.views.widgets.status_bar import ViewMode

LeftView = Literal["connections", "requests"]
"""What the main screen's left pane lists."""


class RequestsViewKeys(Screen[None]):
    """What the main screen does for the requests view; it provides the tables and panes."""

    if TYPE_CHECKING:
        store: Store
        mode: ViewMode
        left_view: LeftView
        connections_table: ConnectionsTable
        exchanges_table: ExchangesTable
        requests_table: RequestsTable
        filter_bar: FilterBar
        find_bar: FindBar
        _requests_stale: bool
        _requests_outdated: bool
        _requests_drawn: float
        _shown_exchange: Exchange | None
        _wanted_exchange: tuple[tuple[str, int], int] | None

        @property
        def selected_exchange(self) -> Exchange | None: ...
        @property
        def selected_connection(self) -> Connection | None: ...
        @property
        def left_table(self) -> ConnectionsTable | RequestsTable: ...
        def show_changes(self, changes: PendingChanges) -> None: ...
        def catch_up(self, *, now: bool = False) -> None: ...
        def _draw_detail(self, *, keep_scroll: bool = False) -> None: ...
        def _draw_status(self) -> None: ...
        def _load_exchanges(self, *, stick_to_first: bool) -> None: ...
        def _connections_moved(self, event: LiveTable.Moved) -> None: ...

    def action_switch_view(self) -> None:
        """Connections ⇄ every request; the selection carries over where it can."""
        if self.filter_bar.is_open or self.find_bar.is_open:
            return  # a tab typed in a prompt stays there: it is not a request to switch
        exchange = self.selected_exchange
        self.left_view = "requests" if self.left_view == "connections" else "connections"
        requests = self.left_view == "requests"
        self.connections_table.display = not requests
        self.exchanges_table.display = not requests
        self.requests_table.display = requests
        if requests and self._requests_outdated:
            self._load_requests()
        elif requests:
            # Nothing changed since the list was made: 100,000 rows need not be walked again.
            if self.mode == "following":
                self.requests_table.move_cursor_to(0)
        else:
            # Redrawn whole, but not changed: the requests list made before still holds.
            outdated = self._requests_outdated
            self.show_changes(PendingChanges.full())
            self._requests_outdated = outdated
        if requests and self.mode == "following":
            self.requests_table.move_cursor_to(0)  # following: the newest request, not the old pick
        elif exchange is not None:
            self._select_exchange(exchange)
        self.left_table.focus()
        self._draw_detail(keep_scroll=True)
        self._draw_status()

    def _select_exchange(self, exchange: Exchange) -> None:
        """Put the cursor(s) on ``exchange``: its row, or its connection's row and its own."""
        if self.left_view == "requests":
            if not self.requests_table.select_row(exchange):
                self._load_requests()
                self.requests_table.select_row(exchange)
            return
        self._wanted_exchange = exchange_key(exchange)
        self.connections_table.select_key(exchange.key)
        self._load_exchanges(stick_to_first=False)

    def _show_request_changes(self, changes: PendingChanges) -> None:
        if changes.everything:
            self._load_requests()
        elif changes.exchanges or changes.view_changed:
            self._requests_stale = True
            self.catch_up()
        shown = self._shown_exchange
        if shown is not None and shown in changes.exchanges:
            self._draw_detail(keep_scroll=True)

    def _load_requests(self) -> None:
        """Every visible request, newest first (a walk over the store: at most twice a
        second, or at once when the filter changed)."""
        self._requests_stale = False
        self._requests_outdated = False
        self._requests_drawn = time.monotonic()
        table = self.requests_table
        table.hidden_columns = {"pod"} if set(self.store.sources) <= {"local"} else set()
        narrowed = self.store.filter is not None or self.store.hide_noise
        table.empty_text = (
            "no request matches the filter (esc clears it)" if narrowed else "waiting for requests…"
        )
        table.show(
            self.store.visible_exchanges_in_order()[::-1], stick_to_first=self.mode == "following"
        )

    @on(LiveTable.Highlighted, "#requests")
    def _request_highlighted(self, event: LiveTable.Highlighted) -> None:
        if self.selected_exchange is not self._shown_exchange:
            self._draw_detail()

    @on(LiveTable.Moved, "#requests")
    def _requests_moved(self, event: LiveTable.Moved) -> None:
        self._connections_moved(event)
