"""The live tables of the main screen: connections, the exchanges of one connection, and
every request across connections."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from tui.model.flows import Connection, ConnectionKey, Exchange
from tui.model.grpc import call_status
from tui.model.secrets import mask_url
from tui.views import cells
from tui.views.widgets.live_table import Cell, Column, LiveTable

Clock = Callable[[], float]
ProtocolOf = Callable[[ConnectionKey], str]

CONNECTION_COLUMNS = (
    Column("#", 5, "right"),
    Column("pod", 16),
    Column("client", 21, flexible=True),
    Column("port", 5, "right"),
    Column("proto", 5),
    Column("state", 6),
    Column("req", 4, "right"),
    Column("last", 9),
    Column("in", 5, "right"),
    Column("out", 5, "right"),
    Column("age", 4, "right"),
)


def connection_cells(connection: Connection, now: float) -> Sequence[Cell]:
    last: Cell
    if connection.last_grpc_status is not None:
        # As in the requests table: the call's own status, not the HTTP 200 it came in.
        last = cells.grpc_status(connection.last_grpc_status)
    # A WebSocket's last status is its 101, which says less than the protocol it switched to.
    elif connection.protocol != "ws" and (
        connection.protocol in ("http", "unknown") or connection.last_status is not None
    ):
        last = cells.status(connection.last_status)
    else:
        last = (connection.protocol, "italic cyan")
    return (
        str(connection.conn),
        connection.source,
        cells.address(connection.client, connection.client_port),
        str(connection.server_port),
        cells.protocol(connection.protocol),
        cells.state(connection.state),
        str(connection.requests),
        last,
        cells.size(connection.bytes_in),
        cells.size(connection.bytes_out),
        cells.age(now - connection.opened),
    )


class ConnectionsTable(LiveTable[Connection, ConnectionKey]):
    def __init__(self, clock: Clock, *, id: str | None = None) -> None:
        super().__init__(
            CONNECTION_COLUMNS,
            lambda connection: connection_cells(connection, clock()),
            lambda connection: connection.key,
            empty_text="waiting for connections…",
            id=id,
        )


STATUS_COLUMN = Column("st", 9)
"""Wide enough for a gRPC status name (``NOT_FOUND``); longer ones end in ``…``."""

EXCHANGE_COLUMNS = (
    Column("#", 4, "right"),
    Column("method", 7),
    Column("path", 12, flexible=True),
    STATUS_COLUMN,
    Column("latency", 7, "right"),
    Column("size", 5, "right"),
)


def exchange_cells(exchange: Exchange, reveal: bool = False) -> Sequence[Cell]:
    """The row of ``exchange``; secrets in its URL masked unless ``reveal``."""
    request = exchange.request
    response = exchange.response
    target = request.target or request.path
    if not reveal:
        target = mask_url(target)
    path: Cell = target
    if exchange.upgraded:
        path = (f"{target} ⇄", "cyan")
    elif exchange.error:
        path = (target, "red")
    elif exchange.incomplete:
        path = (target, "yellow")
    return (
        str(exchange.index),
        cells.method(request.method),
        path,
        _status(exchange),
        cells.latency(exchange.latency_ms),
        cells.size(response.body_length) if response is not None else "",
    )


def _status(exchange: Exchange) -> Cell:
    """The HTTP status; a gRPC call's own status instead (``OK``, ``NOT_FOUND``…), which says
    more than the HTTP 200 it came in: green when OK, an error in red otherwise."""
    grpc = call_status(exchange)
    if grpc is None:
        return cells.status(exchange.status)
    return cells.grpc_status(grpc[1])


def exchange_key(exchange: Exchange) -> tuple[ConnectionKey, int]:
    return (exchange.key, exchange.index)


class ExchangesTable(LiveTable[Exchange, tuple[ConnectionKey, int]]):
    def __init__(self, *, id: str | None = None) -> None:
        self.reveal_secrets = False
        """Show secrets in paths (``?access_token=``) as sent; the main screen's ``s``."""
        super().__init__(
            EXCHANGE_COLUMNS,
            lambda exchange: exchange_cells(exchange, self.reveal_secrets),
            exchange_key,
            empty_text="no HTTP requests on this connection",
            id=id,
        )


REQUEST_COLUMNS = (
    Column("time", 12),
    Column("pod", 16),
    Column("method", 7),
    Column("path", 12, flexible=True),
    STATUS_COLUMN,
    Column("latency", 7, "right"),
    Column("size", 5, "right"),
    Column("proto", 5),
)


def request_cells(exchange: Exchange, protocol: str, reveal: bool = False) -> Sequence[Cell]:
    """The row of ``exchange`` in the requests view: when, which pod, then as in its
    connection's list (secrets in its URL masked unless ``reveal``), and the protocol."""
    own = exchange_cells(exchange, reveal)
    return (clock_time(exchange.started), exchange.key[0], *own[1:], cells.protocol(protocol))


def clock_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


class RequestsTable(LiveTable[Exchange, tuple[ConnectionKey, int]]):
    """Every request the filter lets through, across connections and pods."""

    def __init__(self, protocol_of: ProtocolOf, *, id: str | None = None) -> None:
        self.reveal_secrets = False
        """Show secrets in paths as sent; the main screen's ``s``."""
        super().__init__(
            REQUEST_COLUMNS,
            lambda exchange: request_cells(
                exchange, protocol_of(exchange.key), self.reveal_secrets
            ),
            exchange_key,
            empty_text="waiting for requests…",
            id=id,
        )
