"""HAR content: bodies decoded, trailers after the headers, WebSocket messages, and back again."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import zstandard

from tests.unit.http_streams import Stream, c2s, replay, s2c
from tests.unit.ws_streams import chat, decode
from tui.model.content import decode_body
from tui.model.flows import Connection
from tui.model.store import Store
from tui.model.updates import AgentEvent
from tui.output.har import har_entry, har_of_view
from tui.output.har_reading import read_har

pytestmark = pytest.mark.timeout(30)

SCHEMA = json.loads((Path(__file__).with_name("har-1.2.schema.json")).read_text())
PAGE = b"<html>" + b"<p>the same paragraph</p>" * 200 + b"</html>"
ZIPPED = gzip.compress(PAGE)
GET = b"GET /page HTTP/1.1\r\nHost: shop.local\r\nAccept-Encoding: gzip\r\n\r\n"
GZIP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: %d\r\n\r\n" % len(ZIPPED) + ZIPPED
)
CHUNKED_WITH_TRAILER = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
    b"5\r\nhello\r\n0\r\nX-Checksum: 5d41402a\r\n\r\n"
)


def connection_of(*steps: Any) -> Connection:
    conn, _ = replay(Stream("har", tuple(steps)))
    return conn


def entry_of(conn: Connection, index: int = 0) -> dict[str, Any]:
    entry = har_entry(conn.exchanges[index], conn)
    document = {
        "log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": [entry]}
    }
    jsonschema.validate(document, SCHEMA)
    return entry


def test_a_gzip_body_is_recorded_decoded_with_the_bytes_it_saved() -> None:
    response = entry_of(connection_of(c2s(GET), s2c(GZIP_RESPONSE)))["response"]
    assert response["content"]["text"] == PAGE.decode()
    assert "encoding" not in response["content"]
    assert response["content"]["size"] == len(PAGE)
    assert response["content"]["compression"] == len(PAGE) - len(ZIPPED)
    assert response["bodySize"] == len(ZIPPED)


def test_binary_bodies_alone_are_base64() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n" % len(png) + png
    )
    content = entry_of(connection_of(c2s(GET), s2c(reply)))["response"]["content"]
    assert content["encoding"] == "base64"
    assert "compression" not in content


def test_a_body_that_is_not_what_its_coding_says_is_kept_as_sent_with_a_comment() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nplain"
    content = entry_of(connection_of(c2s(GET), s2c(reply)))["response"]["content"]
    assert content["text"] == "plain"
    assert content["comment"].startswith("shown as sent: not valid gzip")


def test_a_zstd_body_cut_short_is_recorded_as_far_as_it_decoded_with_a_comment() -> None:
    plain = b"zstd text " * 2000
    coded = zstandard.ZstdCompressor().compress(plain)[:-8]  # its last block lost by the sender
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: zstd\r\nContent-Length: %d\r\n\r\n" % len(coded)
        + coded
    )
    content = entry_of(connection_of(c2s(GET), s2c(reply)))["response"]["content"]
    assert "decoding ended early" in content["comment"]
    assert "compression" not in content
    assert content["size"] == len(coded)


def test_trailers_follow_the_response_headers_marked_as_trailers() -> None:
    headers = entry_of(connection_of(c2s(GET), s2c(CHUNKED_WITH_TRAILER)))["response"]["headers"]
    assert headers[-1] == {"name": "X-Checksum", "value": "5d41402a", "comment": "trailer"}
    assert headers[0] == {"name": "Transfer-Encoding", "value": "chunked"}


def test_websocket_messages_use_the_browsers_convention() -> None:
    conversation = chat(deflate=True)
    exchange = decode(conversation)
    conn = connection_of(c2s(GET))
    conn.exchanges[0] = exchange
    messages = har_entry(exchange, conn)["_webSocketMessages"]
    assert messages[0] == {
        "type": "send",
        "time": 0.0,
        "opcode": 1,
        "data": "hello, is anyone there?",
        "_note": "compressed",
    }
    assert messages[1]["type"] == "receive"
    assert [m["opcode"] for m in messages] == [1, 1, 2, 9, 1, 9, 10, 1, 1, 1, 1, 2, 8, 8]
    assert messages[-1]["data"] == "1000 normal closure: bye"


def test_a_recorded_har_reopens_to_the_same_bodies_and_trailers() -> None:
    store = Store()
    conn = connection_of(c2s(GET), s2c(GZIP_RESPONSE), c2s(GET), s2c(CHUNKED_WITH_TRAILER))
    data, _ = har_of_view([(conn, conn.exchanges)], "0.1.0", reveal=False)
    store.apply([AgentEvent(s, e) for s, e in read_har(data, "r.har")])
    (reopened,) = store.connections.values()
    zipped, chunked = reopened.exchanges
    assert zipped.response is not None
    assert decode_body(zipped.response).data == PAGE
    assert chunked.response is not None
    assert list(chunked.response.trailers) == [("X-Checksum", "5d41402a")]
    again, _ = har_of_view([(reopened, reopened.exchanges)], "0.1.0", reveal=False)
    first = json.loads(data)["log"]["entries"]
    second = json.loads(again)["log"]["entries"]
    assert [e["response"]["content"] for e in second] == [e["response"]["content"] for e in first]
    assert [e["response"]["headers"] for e in second] == [e["response"]["headers"] for e in first]


def test_a_websocket_conversation_reopens_from_har_with_its_messages() -> None:
    conversation = chat(deflate=True)
    handshake = (
        b"GET /room HTTP/1.1\r\nHost: chat.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    accept = "HTTP/1.1 101 Switching Protocols\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in conversation.response_headers
    )
    steps = [c2s(handshake), s2c(accept.encode() + b"\r\n")]
    steps += [c2s(data) if side == "in" else s2c(data) for side, data in conversation.chunks]
    conn = connection_of(*steps)
    (exchange,) = conn.exchanges
    assert conn.protocol == "ws"
    assert [(m.direction, m.kind, m.data) for m in exchange.messages] == conversation.sent
    data, _ = har_of_view([(conn, conn.exchanges)], "0.1.0", reveal=False)
    store = Store()
    store.apply([AgentEvent(s, e) for s, e in read_har(data, "ws.har")])
    (reopened,) = store.connections.values()
    assert reopened.protocol == "ws"
    (again,) = reopened.exchanges
    assert [
        (m.direction, m.kind, m.data, m.note.replace("compressed", "")) for m in again.messages
    ] == [
        (m.direction, m.kind, m.data, m.note.replace("compressed", "")) for m in exchange.messages
    ]


@pytest.mark.parametrize(
    "messages",
    [
        "not a list",
        [1, None, "x"],
        [{"type": "send", "opcode": [1], "data": "x", "time": 1.0}],
        [{"type": "send", "opcode": 1, "data": 5, "time": 1.0}],
        [{"type": "send", "opcode": 2, "data": "not base64!", "time": "soon"}],
        [{"type": "receive", "opcode": 8, "data": "", "time": 1.0}],
    ],
)
def test_odd_websocket_messages_in_a_har_are_skipped_not_fatal(messages: object) -> None:
    conn = connection_of(
        c2s(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
        s2c(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        ),
    )
    entry = har_entry(conn.exchanges[0], conn)
    entry["_webSocketMessages"] = messages
    document = {
        "log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": [entry]}
    }
    store = Store()
    store.apply([AgentEvent(s, e) for s, e in read_har(json.dumps(document).encode(), "x.har")])
    (reopened,) = store.connections.values()
    assert reopened.exchanges[0].status == 101
