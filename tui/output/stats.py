"""``podtap dump --stats``: the endpoints table as plain text, for scripts and CI logs.

    METHOD  ENDPOINT              PROTO   REQS  RATE/S  4XX  5XX  GRPC_ERR     P50     P95     P99
    GET     /api/users/{id}       http      20     2.0    2    2         0  12.0ms  28.1ms  29.0ms

One row per method and route template (the same aggregates as the inspector's endpoints
view), most requested first. ``GRPC_ERR`` counts gRPC calls whose ``grpc-status`` is not 0:
they fail under an HTTP 200, so they are not in ``5XX``. Latencies are quantile estimates
within 1 % (see ``tui/model/quantiles.py``), ``-`` before any response. The rate is per
second over the last 10 seconds before the table is printed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import BinaryIO

from tui.model.endpoints import RATE_SECONDS, Endpoint, EndpointTable
from tui.model.store import Store
from tui.model.text_lines import safe
from tui.model.updates import Update

Clock = Callable[[], float]

HEADINGS = (
    "METHOD",
    "ENDPOINT",
    "PROTO",
    "REQS",
    f"RATE/S({RATE_SECONDS}s)",
    "4XX",
    "5XX",
    "GRPC_ERR",
    "P50",
    "P95",
    "P99",
)
_RIGHT = frozenset(range(3, 11))


def milliseconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}µs"
    if value < 100:
        return f"{value:.1f}ms"
    if value < 10_000:
        return f"{value:.0f}ms"
    return f"{value / 1000:.1f}s"


def endpoint_row(endpoint: Endpoint, now: float) -> tuple[str, ...]:
    p50, p95, p99 = endpoint.percentiles()
    return (
        safe(endpoint.method),
        safe(endpoint.route),
        endpoint.protocol or "-",
        str(endpoint.requests),
        f"{endpoint.rate(now):.1f}",
        str(endpoint.client_errors),
        str(endpoint.server_errors),
        str(endpoint.grpc_errors),
        milliseconds(p50),
        milliseconds(p95),
        milliseconds(p99),
    )


def endpoints_text(endpoints: Sequence[Endpoint], now: float) -> str:
    """The table, aligned in columns, ending with a newline ("no requests" when empty)."""
    if not endpoints:
        return "## endpoints: no requests seen\n"
    rows = [HEADINGS, *(endpoint_row(endpoint, now) for endpoint in endpoints)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADINGS))]
    lines = [
        "  ".join(
            cell.rjust(width) if column in _RIGHT else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    return "\n".join(lines) + "\n"


class EndpointStatsWriter:
    """Decodes the traffic it is given into endpoint aggregates; prints them when asked."""

    def __init__(self, stream: BinaryIO, clock: Clock) -> None:
        self._stream = stream
        self._clock = clock
        # Bodies and raw bytes are not needed for counting: keep none of them.
        self.store = Store(max_connections=5_000, max_exchanges=20_000, body_cap=0, raw_cap=0)
        self.table = EndpointTable()

    def write(self, updates: Sequence[Update]) -> None:
        change = self.store.apply(updates)
        self.table.observe(change.new_exchanges, change.changed_exchanges, self._protocol_of)

    def _protocol_of(self, key: tuple[str, int]) -> str:
        connection = self.store.get(key)
        return "" if connection is None else connection.protocol

    def print_table(self) -> None:
        now = self._clock()
        text = endpoints_text(self.table.sorted("requests", now), now)
        self._stream.write(text.encode("utf-8", "backslashreplace") + b"\n")
        self._stream.flush()
