"""A real WebSocket conversation (the ``websockets`` library at both ends) captured by podtap:
every message each peer sent, in each direction, must come out of the decoder as sent, with
compression off, on with context takeover, and on without it."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from tests.integration.decoded_capture import capture, start_in_lab
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.timeout(90)]

PORT = 8765
SERVER_SAYS: list[tuple[str, bytes]] = [
    ("text", b"hello from the server"),
    ("binary", bytes(range(200))),
    ("text", b"part one, part two, part three"),
    ("text", b"the same line again " * 20),
]
CLIENT_SAYS: list[tuple[str, bytes]] = [
    ("text", b"hi there"),
    ("binary", b"\x00\x01binary\xff"),
    ("text", b"fragmented"),
]

SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

MODES = {
    "plain": [],
    "deflate": [ServerPerMessageDeflateFactory()],
    "fresh": [ServerPerMessageDeflateFactory(server_no_context_takeover=True)],
}

async def talk(websocket):
    async for message in websocket:
        if message == "your turn":
            break
    await websocket.send("hello from the server")
    await websocket.send(bytes(range(200)))
    await websocket.send(["part one, ", "part two, ", "part three"])
    await websocket.send("the same line again " * 20)
    await websocket.ping(b"server ping")
    await websocket.wait_closed()

async def main():
    extensions = MODES[sys.argv[3]]
    async with serve(talk, sys.argv[1], int(sys.argv[2]), compression=None,
                     extensions=extensions, ping_interval=None):
        await asyncio.Future()

asyncio.run(main())
"""


@pytest.mark.parametrize("mode", ["plain", "deflate", "fresh"])
async def test_every_message_both_ways_is_decoded_as_sent(lab: Lab, mode: str) -> None:
    server = start_in_lab(lab, SERVER, lab.ns_ip, PORT, mode)
    received: list[bytes | str] = []
    try:

        async def traffic() -> None:
            extensions = (
                []
                if mode == "plain"
                else [ClientPerMessageDeflateFactory(client_no_context_takeover=mode == "fresh")]
            )
            async with connect(
                f"ws://{lab.ns_ip}:{PORT}/chat",
                compression=None,
                extensions=extensions,
                ping_interval=None,
            ) as websocket:
                await websocket.send("hi there")
                await websocket.send(b"\x00\x01binary\xff")
                await websocket.send(["frag", "mented"])
                await (await websocket.ping(b"client ping"))
                await websocket.send("your turn")
                received.extend([await websocket.recv() for _ in SERVER_SAYS])
                await asyncio.sleep(0.3)  # the server's ping arrives and is answered
                await websocket.close(1000, "done here")

        decoded = await capture(lab, PORT, traffic)
    finally:
        server.kill()
        server.wait()
    assert [m.encode() if isinstance(m, str) else m for m in received] == [
        data for _, data in SERVER_SAYS
    ]
    (conn,) = decoded.connections
    assert conn.protocol == "ws"
    (exchange,) = conn.exchanges
    assert exchange.status == 101
    sent_in = [(m.kind, m.data) for m in exchange.messages if m.direction == "in"]
    sent_out = [(m.kind, m.data) for m in exchange.messages if m.direction == "out"]
    assert sent_in == [
        *CLIENT_SAYS,
        ("ping", b"client ping"),
        ("text", b"your turn"),
        ("pong", b"server ping"),
        ("close", b"done here"),
    ]
    assert sent_out == [
        ("pong", b"client ping"),
        *SERVER_SAYS,
        ("ping", b"server ping"),
        ("close", b"done here"),
    ]
    closes = [m.note for m in exchange.messages if m.kind == "close"]
    assert closes == ["1000 normal closure: done here"] * 2
    compressed = [m for m in exchange.messages if m.note == "compressed"]
    assert bool(compressed) == (mode != "plain")
    assert exchange.notes == []
    # dump --http lists them; the HAR entry carries them as browsers do.
    ident = f"[{conn.conn}:0]"
    assert f"## WebSocket {ident} client → server text (8 bytes" in decoded.text
    assert "Data: hello from the server\n" in decoded.text
    (entry,) = decoded.har()
    assert [(m["type"], m["opcode"]) for m in entry["_webSocketMessages"]][:2] == [
        ("send", 1),
        ("send", 2),
    ]
