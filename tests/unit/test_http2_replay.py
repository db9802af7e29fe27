"""HTTP/2 exchanges put back on the wire (to open a HAR, to write the view) decode to the same
exchanges."""

from __future__ import annotations

import pytest

from agent.events import DataReceived, Gap
from tests.unit.h2_streams import new_connection, recording, replay
from tests.unit.http_streams import Collected
from tui.model.flows import Connection, Exchange
from tui.model.http2 import Http2Decoder
from tui.output.replay import ReplayNumbering, connection_events

pytestmark = pytest.mark.timeout(60)


def _decoded_again(conn: Connection, body_cap: int = 65_536) -> Connection:
    again = new_connection()
    decoder = Http2Decoder(again, body_cap=body_cap)
    sink = Collected()
    for event in connection_events(conn, conn.exchanges, ReplayNumbering()):
        if isinstance(event, DataReceived):
            decoder.feed(event.direction, event.data, event.ts, sink)
        elif isinstance(event, Gap):
            decoder.gap(event.direction, event.length, event.ts, sink)
    decoder.close(99.0, sink)
    return again


def _what(ex: Exchange) -> tuple[object, ...]:
    response = ex.response
    return (
        ex.request.method,
        ex.request.target,
        ex.request.host,
        [(n, v) for n, v in ex.request.headers if n != "host"],
        ex.request.body,
        ex.status,
        None if response is None else (response.headers, response.trailers, response.body),
        [(m.direction, m.data) for m in ex.messages],
        ex.stream_id,
    )


@pytest.mark.parametrize("name", ["nghttp-concurrent", "curl-prior-knowledge", "grpc-calls"])
def test_replayed_exchanges_decode_the_same(name: str) -> None:
    conn, _, _ = replay(recording(name))
    again = _decoded_again(conn)
    assert again.protocol == conn.protocol
    assert [_what(ex) for ex in again.exchanges] == [_what(ex) for ex in conn.exchanges]


def test_a_body_beyond_the_cap_is_a_gap_not_made_up_bytes() -> None:
    conn, _, _ = replay(recording("nghttp-concurrent"), body_cap=1000)
    again = _decoded_again(conn, body_cap=1000)
    big = next(ex for ex in again.exchanges if ex.request.target == "/big.bin")
    assert big.incomplete
    assert big.response is not None
    assert big.response.body == bytes(range(256)) * 3 + bytes(range(232))

    # The loss fell inside a DATA frame: the framing and the header table held.
    later = next(ex for ex in again.exchanges if ex.request.target == "/missing")
    assert not later.incomplete
    assert later.response is not None
    assert later.response.header("server") == "nghttpd nghttp2/1.52.0"
    assert big.response.body_length == len(bytes(range(256)) * 400)
