"""How the main screen's panes follow the selection: the left pane's cursor picks the
connection (or, in the requests view, the request), the request list and the detail pane show
it; while following live traffic they catch up at a pace rather than at every change."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual import on
from textual.screen import Screen

from tui.model.bodies import BodyMode
from tui.model.find import Needle
from tui.model.flows import Connection, ConnectionKey, Exchange
from tui.model.store import Store
from tui.views.widgets.detail import DetailPane, connection_facts, exchange_view, raw_view
from tui.views.widgets.live_table import LiveTable
from tui.views.widgets.tables import ConnectionsTable, ExchangesTable

if TYPE_CHECKING:
    from tui.views.widgets.status_bar import ViewMode

FOLLOW_INTERVAL = 0.5
"""Seconds between redraws of the request list and detail while following live traffic."""

NOTHING_SELECTED = "Select a connection (↑/↓) to see its requests; / filters, ? lists every key."


class FollowingPanes(Screen[None]):
    """What the main screen does when the selection moves; it provides the tables and panes."""

    if TYPE_CHECKING:
        store: Store
        mode: ViewMode
        raw_mode: bool
        reveal_secrets: bool
        body_mode: BodyMode
        needle: Needle | None
        connections_table: ConnectionsTable
        exchanges_table: ExchangesTable
        detail: DetailPane
        _requests_stale: bool
        _requests_drawn: float
        _right_panes_stale: bool
        _right_panes_drawn: float
        _shown_exchange: Exchange | None
        _wanted_exchange: tuple[ConnectionKey, int] | None

        @property
        def selected_exchange(self) -> Exchange | None: ...
        @property
        def selected_connection(self) -> Connection | None: ...
        def apply_typed_filter(self) -> None: ...
        def _load_requests(self) -> None: ...
        def _draw_status(self) -> None: ...

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
        if (
            self._requests_stale
            and self.mode != "paused"
            and (now or time.monotonic() - self._requests_drawn >= FOLLOW_INTERVAL)
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
            self.detail.show(
                raw_view(connection, reveal=self.reveal_secrets), keep_scroll=keep_scroll
            )
        elif exchange is None:
            self.detail.show(connection_facts(connection), keep_scroll=keep_scroll)
        else:
            self.detail.show(
                exchange_view(
                    exchange, connection, reveal=self.reveal_secrets, mode=self.body_mode
                ),
                keep_scroll=keep_scroll,
            )
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
