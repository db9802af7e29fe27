"""The endpoints table: one row per method and route template, its figures live."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tui.model.endpoints import Endpoint, EndpointKey
from tui.views import cells
from tui.views.widgets.live_table import Cell, Column, LiveTable

Clock = Callable[[], float]

SPARK_SECONDS = 20
"""Seconds of history the rate sparkline shows, one character each."""

ENDPOINT_COLUMNS = (
    Column("method", 7),
    Column("endpoint", 20, flexible=True),
    Column("proto", 5),
    Column("requests", 9, "right"),
    Column("rate", 6, "right"),
    Column("4xx", 5, "right"),
    Column("5xx", 5, "right"),
    Column("grpc err", 8, "right"),
    Column("p50", 7, "right"),
    Column("p95", 7, "right"),
    Column("p99", 7, "right"),
    Column(f"last {SPARK_SECONDS}s", SPARK_SECONDS),
)
SORTABLE = ("endpoint", "requests", "rate", "4xx", "5xx", "grpc err", "p50", "p95", "p99")
"""Columns the table can be sorted by, in the order ``<`` and ``>`` go through them."""


def _errors(count: int, style: str) -> Cell:
    return (str(count), style) if count else ("0", "dim")


def endpoint_cells(endpoint: Endpoint, now: float) -> Sequence[Cell]:
    p50, p95, p99 = endpoint.percentiles()
    rate = endpoint.rate(now)
    return (
        cells.method(endpoint.method),
        endpoint.route,
        cells.protocol(endpoint.protocol),
        str(endpoint.requests),
        (f"{rate:.1f}/s", "" if rate else "dim"),
        _errors(endpoint.client_errors, "yellow"),
        _errors(endpoint.server_errors, "bold red"),
        _errors(endpoint.grpc_errors, "bold red"),
        cells.latency(p50) if p50 is not None else ("-", "dim"),
        cells.latency(p95) if p95 is not None else ("-", "dim"),
        cells.latency(p99) if p99 is not None else ("-", "dim"),
        (cells.sparkline(endpoint.per_second(now, SPARK_SECONDS)), "green"),
    )


def endpoint_key(endpoint: Endpoint) -> EndpointKey:
    return (endpoint.method, endpoint.route)


class EndpointsTable(LiveTable[Endpoint, EndpointKey]):
    def __init__(self, now: Clock, *, id: str | None = None) -> None:
        super().__init__(
            ENDPOINT_COLUMNS,
            lambda endpoint: endpoint_cells(endpoint, now()),
            endpoint_key,
            empty_text="no requests yet",
            id=id,
        )
