"""The WebSocket decoder against conversations framed by the ``websockets`` library."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.http_streams import Stream, c2s, replay, s2c
from tests.unit.ws_streams import (
    Changes,
    Conversation,
    Peers,
    chat,
    decode,
    received,
    switched_exchange,
)
from tui.model.flows import Response
from tui.model.websocket import (
    INFLATE_LIMIT,
    WebSocketDecoder,
    close_note,
    deflate_takeover,
    switches_to_websocket,
)

pytestmark = pytest.mark.timeout(60)

SETTINGS = {
    "plain": {"deflate": False},
    "deflate": {"deflate": True},
    "deflate, client resets": {"deflate": True, "client_takeover": False},
    "deflate, server resets": {"deflate": True, "server_takeover": False},
    "deflate, both reset": {"deflate": True, "client_takeover": False, "server_takeover": False},
}
CONVERSATIONS = {name: chat(**options) for name, options in SETTINGS.items()}


@pytest.mark.parametrize("name", SETTINGS)
def test_every_message_comes_out_as_sent(name: str) -> None:
    conversation = CONVERSATIONS[name]
    exchange = decode(conversation)
    assert received(exchange.messages) == conversation.sent
    assert exchange.notes == []
    assert not exchange.incomplete


def test_compressed_messages_say_so_and_count_inflated_bytes() -> None:
    exchange = decode(CONVERSATIONS["deflate"])
    first = exchange.messages[0]
    assert first.note == "compressed"
    assert first.length == len(first.data) == len(b"hello, is anyone there?")


def test_close_messages_carry_code_and_reason() -> None:
    closes = [m for m in decode(CONVERSATIONS["plain"]).messages if m.kind == "close"]
    assert [(m.direction, m.note) for m in closes] == [
        ("in", "1000 normal closure: bye"),
        ("out", "1000 normal closure: bye"),
    ]
    assert close_note(b"") == "no status code"
    assert close_note((4001).to_bytes(2, "big")) == "4001 application code"


def test_context_takeover_is_what_makes_later_messages_readable() -> None:
    # The same bytes read as if each message had a fresh window must fail where the sender
    # referred back to an earlier message: so the decoder's per-direction window matters.
    conversation = CONVERSATIONS["deflate"]
    headers = [
        (name, "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        if name.lower() == "sec-websocket-extensions"
        else (name, value)
        for name, value in conversation.response_headers
    ]
    exchange = decode(Conversation(headers, conversation.chunks, conversation.sent))
    assert received(exchange.messages) != conversation.sent
    assert any("does not inflate" in m.note for m in exchange.messages)


def test_negotiation_is_read_per_direction() -> None:
    def takeover(value: str) -> object:
        return deflate_takeover(Response(headers=[("Sec-WebSocket-Extensions", value)]))

    assert takeover("permessage-deflate") == {"in": True, "out": True}
    assert takeover("permessage-deflate; client_no_context_takeover") == {"in": False, "out": True}
    assert takeover("x-other, permessage-deflate; server_no_context_takeover=") == {
        "in": True,
        "out": False,
    }
    assert takeover("x-webkit-deflate-frame") is None
    assert switches_to_websocket(switched_exchange([("Upgrade", "WebSocket")]))


def pieces(cuts: Sequence[Sequence[int]]) -> object:
    def split(index: int, data: bytes) -> list[bytes]:
        points = [p for p in cuts[index % len(cuts)] if 0 < p < len(data)]
        edges = [0, *sorted(set(points)), len(data)]
        return [data[a:b] for a, b in itertools.pairwise(edges)]

    return split


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(list(SETTINGS)),
    cuts=st.lists(st.lists(st.integers(1, 900), max_size=6), min_size=1, max_size=8),
)
def test_any_segmentation_gives_the_same_messages(name: str, cuts: list[list[int]]) -> None:
    conversation = CONVERSATIONS[name]
    exchange = decode(conversation, pieces(cuts))  # type: ignore[arg-type]
    assert received(exchange.messages) == conversation.sent


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(list(SETTINGS)),
    flips=st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 2000), st.integers(0, 255)), max_size=4
    ),
)
def test_random_corruption_raises_nothing(name: str, flips: list[tuple[int, int, int]]) -> None:
    conversation = CONVERSATIONS[name]
    chunks = [bytearray(data) for _, data in conversation.chunks]
    for which, where, value in flips:
        chunk = chunks[which % len(chunks)]
        if chunk:
            chunk[where % len(chunk)] = value
    corrupt = Conversation(
        conversation.response_headers,
        [(d, bytes(c)) for (d, _), c in zip(conversation.chunks, chunks, strict=True)],
    )
    exchange = decode(corrupt, message_cap=1024)
    assert all(len(m.data) <= 1024 for m in exchange.messages)


@given(
    junk=st.lists(st.tuples(st.sampled_from(["in", "out"]), st.binary(max_size=64)), max_size=10)
)
@settings(max_examples=150, deadline=None)
def test_arbitrary_bytes_raise_nothing(junk: list[tuple[str, bytes]]) -> None:
    exchange = switched_exchange([("Sec-WebSocket-Extensions", "permessage-deflate")])
    decoder = WebSocketDecoder(exchange)
    sink = Changes()
    for direction, data in junk:
        decoder.feed(direction, data, 1.0, sink)  # type: ignore[arg-type]
        decoder.gap(direction, 3, 1.5, sink)  # type: ignore[arg-type]
    decoder.close(2.0, sink)


def test_a_loss_inside_a_frame_cuts_that_message_only() -> None:
    peers = Peers(deflate=False)
    peers.binary("in", b"A" * 1000)
    peers.text("in", "after the loss")
    direction, first = peers.conversation.chunks[0]
    exchange = switched_exchange(peers.conversation.response_headers)
    decoder = WebSocketDecoder(exchange)
    sink = Changes()
    decoder.feed(direction, first[:100], 1.0, sink)
    decoder.gap(direction, 500, 2.0, sink)
    decoder.feed(direction, first[600:], 3.0, sink)
    decoder.feed(*peers.conversation.chunks[1], 4.0, sink)
    cut, after = exchange.messages
    assert cut.length == 1000
    # Bytes after the loss are never joined to bytes before it.
    assert set(cut.data) == {ord("A")}
    assert len(cut.data) < 100
    assert "loss" in cut.note
    assert (after.kind, after.data) == ("text", b"after the loss")
    assert exchange.incomplete


def test_a_loss_with_context_takeover_stops_inflating_that_direction() -> None:
    peers = Peers(deflate=True)
    peers.text("out", "x" * 5000 + "tail")
    peers.text("out", "compressed against the lost window")
    peers.text("in", "the other direction is fine")
    (_, first), *rest = peers.conversation.chunks
    exchange = switched_exchange(peers.conversation.response_headers)
    decoder = WebSocketDecoder(exchange)
    sink = Changes()
    decoder.feed("out", first[:4], 1.0, sink)
    decoder.gap("out", 2, 1.0, sink)
    decoder.feed("out", first[6:], 1.0, sink)
    for direction, data in rest:
        decoder.feed(direction, data, 2.0, sink)
    cut, later, other = exchange.messages
    assert "loss" in cut.note
    assert later.data == b""
    assert "window lost" in later.note
    assert other.data == b"the other direction is fine"


def test_a_loss_where_no_boundary_is_known_stops_the_direction_with_a_note() -> None:
    conversation = CONVERSATIONS["plain"]
    exchange = switched_exchange(conversation.response_headers)
    decoder = WebSocketDecoder(exchange)
    sink = Changes()
    (direction, data), *rest = conversation.chunks
    decoder.feed(direction, data, 1.0, sink)
    decoder.gap(direction, 10, 1.0, sink)
    for later_direction, later in rest:
        decoder.feed(later_direction, later, 2.0, sink)
    assert all(m.direction == "out" for m in exchange.messages[1:])
    assert exchange.notes == [
        "WebSocket client → server: 10 bytes were lost where no frame boundary is known; "
        "the rest is not decoded"
    ]


def test_a_decompression_bomb_is_cut_at_the_limit() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    payload = compressor.compress(bytes(INFLATE_LIMIT * 2)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = payload[:-4]
    frame = bytes([0xC2, 127]) + len(payload).to_bytes(8, "big") + payload
    exchange = switched_exchange([("Sec-WebSocket-Extensions", "permessage-deflate")])
    decoder = WebSocketDecoder(exchange)
    decoder.feed("out", frame, 1.0, Changes())
    (bomb,) = exchange.messages
    assert len(bomb.data) == 65_536
    assert INFLATE_LIMIT < bomb.length <= INFLATE_LIMIT + 65_536
    assert "inflates past" in bomb.note


def test_large_messages_keep_their_first_bytes_and_true_length() -> None:
    peers = Peers(deflate=False)
    peers.binary("out", bytes(range(256)) * 1000)
    exchange = decode(peers.conversation, message_cap=1000)
    (message,) = exchange.messages
    assert message.data == (bytes(range(256)) * 4)[:1000]
    assert message.length == 256_000


def test_old_messages_are_dropped_past_the_cap_and_counted() -> None:
    peers = Peers(deflate=False)
    for number in range(50):
        peers.text("in", f"message {number}")
    exchange = decode(peers.conversation, max_messages=20)
    assert exchange.messages[-1].data == b"message 49"
    assert len(exchange.messages) <= 20
    dropped = 50 - len(exchange.messages)
    assert exchange.notes == [f"{dropped} earlier WebSocket messages were not kept"]


def test_an_unfinished_message_is_kept_at_close() -> None:
    peers = Peers(deflate=False)
    peers.peer("in").send_text(b"first half", fin=False)
    peers.flush("in")
    exchange = decode(peers.conversation)
    (message,) = exchange.messages
    assert message.data == b"first half"
    assert message.note == "the connection closed before this message ended"


def test_old_messages_are_dropped_past_the_byte_budget() -> None:
    peers = Peers(deflate=False)
    for number in range(40):
        peers.binary("out", bytes([number]) * 1000)
    exchange = decode(peers.conversation, max_bytes=10_000)
    assert sum(len(m.data) for m in exchange.messages) <= 10_000
    assert exchange.messages[-1].data == bytes([39]) * 1000
    assert exchange.notes == [
        f"{40 - len(exchange.messages)} earlier WebSocket messages were not kept"
    ]


def upgraded_stream(conversation: Conversation, first_message_with_101: bool) -> Stream:
    """The whole connection as captured: handshake, then the conversation's chunks."""
    handshake = (
        b"GET /room HTTP/1.1\r\nHost: chat.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    accept = "HTTP/1.1 101 Switching Protocols\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in conversation.response_headers
    )
    steps = [c2s(handshake)]
    chunks = list(conversation.chunks)
    head = accept.encode() + b"\r\n"
    if first_message_with_101:
        # A server that speaks first puts its first frame in the 101's own segment.
        index = next(n for n, (side, _) in enumerate(chunks) if side == "out")
        head += chunks.pop(index)[1]
    steps.append(s2c(head))
    steps += [c2s(data) if side == "in" else s2c(data) for side, data in chunks]
    return Stream("ws", tuple(steps))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(list(SETTINGS)),
    together=st.booleans(),
    cuts=st.lists(st.lists(st.integers(1, 900), max_size=6), min_size=1, max_size=8),
)
def test_after_the_101_any_segmentation_gives_the_same_messages(
    name: str, together: bool, cuts: list[list[int]]
) -> None:
    conversation = CONVERSATIONS[name]
    conn, _ = replay(upgraded_stream(conversation, together), pieces(cuts))  # type: ignore[arg-type]
    assert conn.protocol == "ws"
    (exchange,) = conn.exchanges
    assert exchange.status == 101
    sent = sorted(conversation.sent, key=lambda item: item[0])
    got = sorted(received(exchange.messages), key=lambda item: item[0])
    assert got == sent
