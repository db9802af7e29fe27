"""Secrets inside WebSocket and gRPC messages are masked in every output that shows them (HAR,
``dump --http``, the detail pane) unless revealed; binary payloads are left as sent.

The traffic is real: a grpcio client calling a grpcio server through a recording relay on
loopback, and the ``websockets`` library's own client and server protocols.
"""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from rich.console import Console, Group

from agent.events import ConnectionClosed, ConnectionOpened, DataReceived, Direction
from tests.grpc_peers import start_server, unary
from tests.hostile_traffic import JWT, MARK
from tests.unit.h2_recorder import Relay
from tests.unit.ws_streams import Peers
from tui.model.flows import Connection, Exchange
from tui.model.secrets import MASK, mask_message_text
from tui.model.store import Store, StoreChange
from tui.model.updates import AgentEvent
from tui.output.exchange_text import ExchangeTextFormatter
from tui.output.har import har_entry
from tui.views.widgets.detail import exchange_view

pytestmark = pytest.mark.timeout(30)

T0 = 1_790_000_000.0
WS_HANDSHAKE = (
    b"GET /room HTTP/1.1\r\nHost: chat.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
BINARY = f"binary password={MARK}-bin".encode()


def events(chunks: list[tuple[Direction, bytes]], port: int) -> list[AgentEvent]:
    opened = ConnectionOpened(
        ts=T0, conn=1, client="10.0.0.1", client_port=41000, server="10.0.0.2", server_port=port
    )
    out = [AgentEvent("local", opened)]
    for index, (direction, data) in enumerate(chunks, 1):
        chunk = DataReceived(ts=T0 + index / 10, conn=1, direction=direction, data=data)
        out.append(AgentEvent("local", chunk))
    closed = ConnectionClosed(ts=T0 + len(chunks), conn=1, reason="fin")
    return [*out, AgentEvent("local", closed)]


def websocket_chunks() -> list[tuple[Direction, bytes]]:
    """A JSON message with a secret key, a text message with a secret pair, a JWT, binary."""
    peers = Peers(deflate=True)
    peers.text("in", json.dumps({"user": "alice", "access_token": f"{MARK}-json"}))
    peers.text("out", f"welcome; session={MARK}-pair, signed {JWT}")
    peers.binary("in", BINARY)
    peers.close("in", 1000, "bye")
    peers.close("out", 1000, "bye")
    conversation = peers.conversation
    accept = "HTTP/1.1 101 Switching Protocols\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in conversation.response_headers
    )
    return [("in", WS_HANDSHAKE), ("out", accept.encode() + b"\r\n"), *conversation.chunks]


def grpc_chunks() -> list[tuple[Direction, bytes]]:
    """One unary call whose request and answer carry a JSON member with a secret key."""
    server, port = start_server()
    try:
        relay = Relay(port)
        with grpc.insecure_channel(f"127.0.0.1:{relay.port}") as channel:
            unary(channel, json.dumps({"password": f"{MARK}-grpc"}))
        relay.thread.join(10)
    finally:
        server.stop(None)
    return [("in" if side == "in" else "out", data) for side, data in relay.chunks]


def decoded(chunks: list[tuple[Direction, bytes]]) -> tuple[Store, StoreChange]:
    store = Store()
    change = store.apply(events(chunks, 8080))
    return store, change


def only_exchange(store: Store) -> tuple[Connection, Exchange]:
    (connection,) = store.connections.values()
    (exchange,) = connection.exchanges
    assert exchange.messages
    return connection, exchange


@pytest.fixture(scope="module", params=["websocket", "grpc"])
def conversation(request: pytest.FixtureRequest) -> list[tuple[Direction, bytes]]:
    return websocket_chunks() if request.param == "websocket" else grpc_chunks()


def test_har_masks_message_secrets_unless_revealed(
    conversation: list[tuple[Direction, bytes]],
) -> None:
    connection, exchange = only_exchange(decoded(conversation)[0])
    masked = har_entry(exchange, connection)
    messages = masked.get("_webSocketMessages") or masked["_grpcMessages"]
    shown = json.dumps(messages, ensure_ascii=False)
    assert MARK not in shown
    assert MASK in shown
    revealed = har_entry(exchange, connection, reveal=True)
    assert MARK in json.dumps(revealed.get("_webSocketMessages") or revealed["_grpcMessages"])


def test_har_keeps_binary_payloads_and_grpc_raw_bytes_as_sent() -> None:
    connection, exchange = only_exchange(decoded(websocket_chunks())[0])
    (binary,) = [
        m for m in har_entry(exchange, connection)["_webSocketMessages"] if m["opcode"] == 2
    ]
    assert base64.b64decode(binary["data"]) == BINARY
    connection, exchange = only_exchange(decoded(grpc_chunks())[0])
    raw = b"".join(
        base64.b64decode(m["raw"]) for m in har_entry(exchange, connection)["_grpcMessages"]
    )
    assert f"{MARK}-grpc".encode() in raw  # podtap open reads these bytes back


def test_dump_http_masks_message_secrets_unless_revealed(
    conversation: list[tuple[Direction, bytes]],
) -> None:
    store, change = decoded(conversation)
    masked = ExchangeTextFormatter().format_change(change, store.get)
    assert MARK not in masked
    assert MASK in masked
    assert MARK in ExchangeTextFormatter(reveal=True).format_change(change, store.get)


def pane_text(exchange: Exchange, connection: Connection, reveal: bool) -> str:
    console = Console(width=200, record=True, file=None, color_system=None)
    with console.capture() as captured:
        console.print(Group(*exchange_view(exchange, connection, reveal=reveal)))
    return captured.get()


def test_detail_pane_masks_message_secrets_unless_revealed(
    conversation: list[tuple[Direction, bytes]],
) -> None:
    connection, exchange = only_exchange(decoded(conversation)[0])
    masked = pane_text(exchange, connection, reveal=False)
    assert MARK not in masked
    assert MASK in masked
    assert MARK in pane_text(exchange, connection, reveal=True)


def test_message_text_is_masked_as_json_or_as_free_text() -> None:
    assert json.loads(mask_message_text('{"a": {"refresh_token": "x", "n": [1]}}')) == {
        "a": {"refresh_token": MASK, "n": [1]}
    }
    assert mask_message_text('{"plain": 1}') == '{"plain": 1}'  # shown as sent
    assert mask_message_text("[not json, token=abc") == f"[not json, token={MASK}"
    assert mask_message_text("hello there") == "hello there"
