"""WebSocket conversations made by the ``websockets`` library's own client and server protocols,
as the bytes a tap would capture after the ``101``, with the messages each peer sent.

The library is the independent judge: it frames, masks, fragments and compresses; the decoder
under test must give back what was handed to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import CloseCode
from websockets.protocol import Protocol
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from agent.events import Direction
from tui.model.flows import Exchange, Request, Response, StreamMessage
from tui.model.websocket import WebSocketDecoder

Sent = tuple[Direction, str, bytes]
"""(direction, kind, payload) as a peer sent it; a close's payload is its reason."""


@dataclass
class Conversation:
    response_headers: list[tuple[str, str]]
    chunks: list[tuple[Direction, bytes]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)


class Peers:
    """A connected client and server; what each sends is recorded as captured chunks."""

    def __init__(
        self, deflate: bool, client_takeover: bool = True, server_takeover: bool = True
    ) -> None:
        client_ext = []
        server_ext = []
        if deflate:
            client_ext = [
                ClientPerMessageDeflateFactory(
                    client_no_context_takeover=not client_takeover,
                    server_no_context_takeover=not server_takeover,
                )
            ]
            server_ext = [ServerPerMessageDeflateFactory()]
        self.client = ClientProtocol(parse_uri("ws://chat.local/room"), extensions=client_ext)
        self.server = ServerProtocol(extensions=server_ext)
        self.client.send_request(self.client.connect())
        self.server.receive_data(b"".join(self.client.data_to_send()))
        request = self.server.events_received()[0]
        response = self.server.accept(request)  # type: ignore[arg-type]
        self.server.send_response(response)
        self.client.receive_data(b"".join(self.server.data_to_send()))
        self.client.events_received()
        self.conversation = Conversation([(k, v) for k, v in response.headers.raw_items()])

    def peer(self, direction: Direction) -> Protocol:
        return self.client if direction == "in" else self.server

    def flush(self, direction: Direction) -> None:
        data = b"".join(self.peer(direction).data_to_send())
        if data:
            self.conversation.chunks.append((direction, data))

    def text(self, direction: Direction, text: str) -> None:
        self.peer(direction).send_text(text.encode())
        self.conversation.sent.append((direction, "text", text.encode()))
        self.flush(direction)

    def binary(self, direction: Direction, data: bytes) -> None:
        self.peer(direction).send_binary(data)
        self.conversation.sent.append((direction, "binary", data))
        self.flush(direction)

    def fragmented(
        self, direction: Direction, parts: Sequence[bytes], ping_between: bool = False
    ) -> None:
        peer = self.peer(direction)
        peer.send_text(parts[0], fin=False)
        for index, part in enumerate(parts[1:], 1):
            if ping_between and index == 1:
                peer.send_ping(b"mid")
                self.conversation.sent.append((direction, "ping", b"mid"))
            peer.send_continuation(part, fin=index == len(parts) - 1)
        self.conversation.sent.append((direction, "text", b"".join(parts)))
        # Fragments cross the wire as separate writes.
        self.flush(direction)

    def ping(self, direction: Direction, data: bytes) -> None:
        self.peer(direction).send_ping(data)
        self.conversation.sent.append((direction, "ping", data))
        self.flush(direction)

    def pong(self, direction: Direction, data: bytes) -> None:
        self.peer(direction).send_pong(data)
        self.conversation.sent.append((direction, "pong", data))
        self.flush(direction)

    def close(self, direction: Direction, code: int, reason: str) -> None:
        self.peer(direction).send_close(code, reason)
        self.conversation.sent.append((direction, "close", reason.encode()))
        self.flush(direction)


def chat(
    deflate: bool,
    client_takeover: bool = True,
    server_takeover: bool = True,
) -> Conversation:
    """Text both ways, binary, a fragmented message with a ping between its fragments, ping,
    pong, repeated text (what context takeover compresses best) and a close handshake."""
    peers = Peers(deflate, client_takeover, server_takeover)
    peers.text("in", "hello, is anyone there?")
    peers.text("out", "hello! welcome to the room")
    peers.binary("in", bytes(range(256)) * 3)
    peers.fragmented("in", [b"frag", b"mented ", b"message"], ping_between=True)
    peers.ping("out", b"are you alive")
    peers.pong("in", b"are you alive")
    for number in range(3):
        peers.text("out", f"the same line, again and again, number {number}")
    peers.text("in", "é ünïcödé ✓")
    peers.binary("out", b"")
    peers.close("in", CloseCode.NORMAL_CLOSURE, "bye")
    peers.close("out", CloseCode.NORMAL_CLOSURE, "bye")
    return peers.conversation


def switched_exchange(headers: list[tuple[str, str]]) -> Exchange:
    request = Request(
        method="GET",
        target="/room",
        path="/room",
        headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")],
    )
    response = Response(status=101, reason="Switching Protocols", headers=headers, complete=True)
    return Exchange(key=("local", 1), index=0, request=request, response=response, upgraded=True)


class Changes:
    def __init__(self) -> None:
        self.count = 0

    def exchange_changed(self, exchange: Exchange) -> None:
        self.count += 1


Splitter = Callable[[int, bytes], Sequence[bytes]]


def decode(conversation: Conversation, split: Splitter | None = None, **options: int) -> Exchange:
    exchange = switched_exchange(conversation.response_headers)
    decoder = WebSocketDecoder(exchange, **options)
    sink = Changes()
    for index, (direction, data) in enumerate(conversation.chunks):
        for piece in split(index, data) if split else [data]:
            decoder.feed(direction, piece, float(index), sink)
    decoder.close(float(len(conversation.chunks)), sink)
    return exchange


def received(messages: Sequence[StreamMessage]) -> list[Sent]:
    return [(m.direction, m.kind, m.data) for m in messages]
