"""The switch points hand a connection's bytes to the next protocol's decoder: every byte past
the switch, in order, with gaps and the close, whatever the chunking."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agent.events import Direction
from tests.unit.http_streams import Collected
from tui.model.decoder import ExchangeSink
from tui.model.flows import Connection, Exchange
from tui.model.handoff import PRIOR_KNOWLEDGE_PREFACE, Handoffs
from tui.model.http import ConnectionDecoder

pytestmark = pytest.mark.timeout(30)

UPGRADE_REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)
SERVER_FRAME = b"\x81\x05hello"
CLIENT_FRAME = b"\x81\x85abcd" + bytes(a ^ b for a, b in zip(b"hello", b"abcdabcd", strict=False))


@dataclass
class ByteLog:
    """A decoder for the protocol after the switch that writes down what it is handed."""

    fed: dict[Direction, bytearray] = field(
        default_factory=lambda: {"in": bytearray(), "out": bytearray()}
    )
    gaps: list[tuple[Direction, int]] = field(default_factory=list)
    closed: bool = False

    def feed(self, direction: Direction, data: bytes, ts: float, sink: ExchangeSink) -> None:
        assert not self.closed
        self.fed[direction] += data

    def gap(self, direction: Direction, length: int, ts: float, sink: ExchangeSink) -> None:
        self.gaps.append((direction, length))

    def close(self, ts: float, sink: ExchangeSink) -> None:
        self.closed = True


def _connection() -> Connection:
    return Connection(("local", 1), "local", 1, "10.0.0.1", 40000, "10.0.0.2", 80, 0.0)


def _feed_in_pieces(
    decoder: ConnectionDecoder, direction: Direction, data: bytes, size: int, sink: Collected
) -> None:
    for start in range(0, len(data), size):
        decoder.feed(direction, data[start : start + size], 1.0, sink)


@pytest.mark.parametrize("piece", [1, 7, 1000])
def test_a_101_hands_every_later_byte_to_the_upgrade_decoder(piece: int) -> None:
    log = ByteLog()
    asked: list[Exchange] = []

    def websocket(connection: Connection, exchange: Exchange) -> ByteLog | None:
        asked.append(exchange)
        return log if exchange.request.header("upgrade") == "websocket" else None

    conn = _connection()
    decoder = ConnectionDecoder(conn, handoffs=Handoffs(after_upgrade=(websocket,)))
    sink = Collected()
    _feed_in_pieces(decoder, "in", UPGRADE_REQUEST, piece, sink)
    # The server's first frame comes in the same segment as the 101, when the pieces are large.
    _feed_in_pieces(decoder, "out", SWITCHED + SERVER_FRAME, piece, sink)
    _feed_in_pieces(decoder, "in", CLIENT_FRAME, piece, sink)
    decoder.gap("out", 40, 2.0, sink)
    decoder.close(3.0, sink)

    [exchange] = conn.exchanges
    assert asked == [exchange]
    assert exchange.upgraded
    assert exchange.response is not None
    assert exchange.response.status == 101
    assert bytes(log.fed["out"]) == SERVER_FRAME
    assert bytes(log.fed["in"]) == CLIENT_FRAME
    assert log.gaps == [("out", 40)]
    assert log.closed
    # The connection's own counts still see every byte.
    assert conn.bytes_in == len(UPGRADE_REQUEST) + len(CLIENT_FRAME)
    assert conn.bytes_out == len(SWITCHED) + len(SERVER_FRAME)


def test_the_first_hook_with_a_decoder_wins_and_none_leaves_the_bytes_raw() -> None:
    log = ByteLog()
    conn = _connection()
    hooks = (lambda _c, _e: None, lambda _c, _e: log, lambda _c, _e: ByteLog())
    decoder = ConnectionDecoder(conn, handoffs=Handoffs(after_upgrade=hooks))
    sink = Collected()
    decoder.feed("in", UPGRADE_REQUEST, 1.0, sink)
    decoder.feed("out", SWITCHED + SERVER_FRAME, 1.0, sink)
    assert bytes(log.fed["out"]) == SERVER_FRAME

    plain = _connection()
    decoder = ConnectionDecoder(plain, handoffs=Handoffs(after_upgrade=(lambda _c, _e: None,)))
    decoder.feed("in", UPGRADE_REQUEST, 1.0, sink)
    decoder.feed("out", SWITCHED + SERVER_FRAME, 1.0, sink)
    decoder.feed("in", b"GET / HTTP/1.1\r\n\r\n", 1.0, sink)
    assert len(plain.exchanges) == 1
    assert plain.exchanges[0].upgraded


def test_a_declined_upgrade_asks_no_hook() -> None:
    asked: list[Exchange] = []

    def hook(connection: Connection, exchange: Exchange) -> None:
        asked.append(exchange)

    conn = _connection()
    decoder = ConnectionDecoder(conn, handoffs=Handoffs(after_upgrade=(hook,)))
    sink = Collected()
    decoder.feed("in", UPGRADE_REQUEST, 1.0, sink)
    decoder.feed("out", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1.0, sink)
    decoder.feed("in", b"GET /next HTTP/1.1\r\nHost: shop\r\n\r\n", 1.0, sink)
    assert asked == []
    assert [ex.request.path for ex in conn.exchanges] == ["/chat", "/next"]


@pytest.mark.parametrize("piece", [1, 5, 100])
def test_the_http2_preface_hands_the_connection_over_from_its_first_byte(piece: int) -> None:
    log = ByteLog()
    conn = _connection()
    decoder = ConnectionDecoder(conn, handoffs=Handoffs(after_preface=(lambda _c: log,)))
    sink = Collected()
    client = PRIOR_KNOWLEDGE_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    server = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    _feed_in_pieces(decoder, "in", client[:10], piece, sink)
    _feed_in_pieces(decoder, "out", server, piece, sink)
    _feed_in_pieces(decoder, "in", client[10:], piece, sink)
    decoder.close(2.0, sink)
    assert bytes(log.fed["in"]) == client
    assert bytes(log.fed["out"]) == server
    assert log.closed
    assert conn.exchanges == []


def test_without_an_http2_decoder_the_preface_leaves_the_connection_undecoded() -> None:
    conn = _connection()
    decoder = ConnectionDecoder(conn, handoffs=Handoffs())
    sink = Collected()
    decoder.feed("in", PRIOR_KNOWLEDGE_PREFACE, 1.0, sink)
    assert conn.protocol == "tcp"
    assert conn.errors == ["HTTP/2 (not decoded: podtap decodes HTTP/1.x)"]
