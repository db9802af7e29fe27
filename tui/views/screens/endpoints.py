"""The endpoints view: per method and route template, requests, rate, errors and latency
quantiles, live; sorted by any column; ``enter`` picks one to see its requests.

The screen reads the app's endpoint table on a timer: rates fall as time passes even when no
traffic comes, so it redraws at its own pace rather than on store changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from tui.model.endpoints import OTHER_ROUTE, EndpointKey, EndpointTable
from tui.model.quantiles import QuantileSketch
from tui.views.screens.panes import PanesScreen
from tui.views.widgets.endpoints_table import ENDPOINT_COLUMNS, SORTABLE, EndpointsTable
from tui.views.widgets.keys_footer import KeysFooter

Clock = Callable[[], float]

REFRESH_EVERY = 0.5
"""Seconds between redraws: quantiles and rates of hundreds of endpoints, twice a second."""

ERROR_BOUND = f"{QuantileSketch().relative_error:.0%}"

GRPC_ERRORS_NOTE = "grpc err: gRPC calls whose grpc-status is not 0 (OK), not counted in 4xx/5xx"


class EndpointsScreen(PanesScreen[EndpointKey | None]):
    """Dismissed with the (method, route) chosen by ``enter``, or None by ``esc``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,e",
            "dismiss(None)",
            "Back",
            key_display="esc",
            id="endpoints.back",
            tooltip="Back to the connections or requests",
        ),
        Binding(
            "enter",
            "choose",
            "Its requests",
            id="endpoints.choose",
            tooltip="Show the requests view filtered to this endpoint",
        ),
        Binding(
            "greater_than_sign",
            "sort(1)",
            "Sort →",
            key_display=">",
            id="endpoints.sort_next",
            tooltip="Sort by the next column",
        ),
        Binding(
            "less_than_sign",
            "sort(-1)",
            "Sort ←",
            key_display="<",
            id="endpoints.sort_previous",
            tooltip="Sort by the previous column",
        ),
        Binding(
            "exclamation_mark",
            "reverse",
            "Reverse",
            key_display="!",
            id="endpoints.reverse",
            tooltip="Reverse the order",
        ),
    ]

    def __init__(self, table: EndpointTable, now: Clock) -> None:
        super().__init__(id="endpoints")
        self.table = table
        self.now = now
        self.sort_by = "requests"
        self.descending = True
        self.rows_table = EndpointsTable(now, id="endpoint-rows")

    def compose(self) -> ComposeResult:
        yield self.rows_table
        yield KeysFooter(compact=True)

    def on_mount(self) -> None:
        self.rows_table.focus()
        self.redraw()
        self.set_interval(REFRESH_EVERY, self.redraw)

    def redraw(self) -> None:
        now = self.now()
        rows = self.table.sorted(self.sort_by, now, descending=self.descending)
        self.rows_table.show(rows)
        arrow = "↓" if self.descending else "↑"
        self.rows_table.columns = [
            replace(column, title=f"{column.title}{arrow}")
            if column.title == self.sort_by
            else column
            for column in ENDPOINT_COLUMNS
        ]
        self.rows_table.border_title = (
            f"endpoints ({len(rows)}) · sorted by {self.sort_by} {arrow} · "
            f"latency quantiles within {ERROR_BOUND}"
        )
        self.rows_table.border_subtitle = GRPC_ERRORS_NOTE

    def action_sort(self, step: int) -> None:
        position = SORTABLE.index(self.sort_by)
        self.sort_by = SORTABLE[(position + step) % len(SORTABLE)]
        # Names read best A to Z; figures, largest first.
        self.descending = self.sort_by != "endpoint"
        self.redraw()

    def action_reverse(self) -> None:
        self.descending = not self.descending
        self.redraw()

    def action_choose(self) -> None:
        endpoint = self.rows_table.cursor_value
        if endpoint is None:
            return
        if endpoint.route == OTHER_ROUTE:
            self.notify(
                "These endpoints were not kept apart (too many): filter with / instead.",
                severity="warning",
            )
            return
        self.dismiss((endpoint.method, endpoint.route))
