"""A gRPC connection's ``last`` column says what its last call ended with (``OK``,
``NOT_FOUND``…), in the words and colours of the requests table, not the HTTP 200 every call's
response begins with. The calls are a recording of a grpcio client and server."""

from __future__ import annotations

import asyncio

import pytest

from tests.ui.driving import frozen_clock, screen_text
from tests.ui.fakes import FakeSession
from tests.ui.test_open_messages import GRPC_CONN, connection_events
from tests.unit.h2_streams import new_connection, recording
from tests.unit.http_streams import Collected
from tui.model.flows import Connection, Exchange
from tui.model.http2 import Http2Decoder
from tui.views.app import PodtapApp
from tui.views.widgets.live_table import Cell
from tui.views.widgets.tables import CONNECTION_COLUMNS, connection_cells, exchange_cells

pytestmark = pytest.mark.timeout(60)

LAST = next(i for i, column in enumerate(CONNECTION_COLUMNS) if column.title == "last")
STATUS = 3
"""The status column of the requests of a connection."""


def last_cell(connection: Connection) -> Cell:
    return connection_cells(connection, 0.0)[LAST]


def status_cell(exchange: Exchange) -> Cell:
    return exchange_cells(exchange)[STATUS]


def test_the_last_column_follows_each_call_as_it_ends() -> None:
    """Fed as it was recorded, after every chunk: the connection's ``last`` is the status cell
    of a call that ended with that chunk, or stays what it was."""
    connection = new_connection()
    decoder = Http2Decoder(connection)
    sink = Collected()
    shown: list[Cell] = []
    ended: set[int] = set()
    for index, (direction, data) in enumerate(recording("grpc-calls")):
        decoder.feed(direction, data, 1.0 + index, sink)
        now_ended = [
            exchange
            for exchange in connection.exchanges
            if exchange.finished is not None and exchange.index not in ended
        ]
        ended.update(exchange.index for exchange in now_ended)
        if now_ended:
            assert last_cell(connection) in [status_cell(exchange) for exchange in now_ended]
            shown.append(last_cell(connection))
        elif shown:
            assert last_cell(connection) == shown[-1]
    assert connection.protocol == "grpc"
    assert len(ended) == 5
    # Four calls that succeed, then one whose person is not found: never the HTTP 200.
    assert shown == [("OK", "green")] * 4 + [("NOT_FOUND", "bold red")]


def test_a_plain_http2_connection_still_shows_the_http_status() -> None:
    connection = new_connection()
    decoder = Http2Decoder(connection)
    sink = Collected()
    for index, (direction, data) in enumerate(recording("curl-prior-knowledge")):
        decoder.feed(direction, data, 1.0 + index, sink)
    assert connection.protocol == "h2"
    assert connection.last_grpc_status is None
    assert last_cell(connection) == ("200", "green")


async def test_the_connections_table_shows_the_grpc_status_of_the_last_call() -> None:
    events = connection_events(GRPC_CONN, 50051, list(recording("grpc-calls")))
    app = PodtapApp(FakeSession([events], finite=True), clock=frozen_clock)
    async with app.run_test(size=(160, 45)) as pilot:
        async with asyncio.timeout(20):
            await app.stream_finished.wait()
        app.draw()
        await pilot.pause()
        # The connections pane is the left one; the detail pane names the client too.
        (row,) = [
            line.split("││")[0]
            for line in screen_text(app).splitlines()
            if "10.0.0.1:41000" in line.split("││")[0]
        ]
        columns = row.strip("│ ").split()
        assert columns[1:7] == ["10.0.0.1:41000", "50051", "grpc", "closed", "5", "NOT_FOUND"]
        (connection,) = app.main_screen.connections_table.rows
        assert last_cell(connection) == ("NOT_FOUND", "bold red")
