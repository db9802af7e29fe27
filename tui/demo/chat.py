"""The demo's WebSocket chat: a room on ``/chat`` that relays what each member says to the
others, and two support agents who talk there. Messages are compressed (permessage-deflate),
some are JSON and some binary, the server pings now and then, and every session ends with a
close handshake, so a reader sees each kind of WebSocket message.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

LINES = (
    "hi, is the checkout fixed yet?",
    "looking at it now",
    "orders from acme are stuck in pending",
    "the sync job restarted at 10:02",
    "can you check the inventory service?",
    "GetStock answers NOT_FOUND for sku-9999, that one is expected",
    "ok, closing the ticket",
)


class ChatRoom:
    def __init__(self) -> None:
        self.members: set[ServerConnection] = set()

    async def handle(self, member: ServerConnection) -> None:
        self.members.add(member)
        try:
            await member.send(json.dumps({"event": "joined", "members": len(self.members)}))
            async for message in member:
                for other in list(self.members):
                    if other is not member:
                        with contextlib.suppress(ConnectionClosed):
                            await other.send(message)
        except ConnectionClosed:
            pass
        finally:
            self.members.discard(member)


async def start_server(port: int) -> Server:
    room = ChatRoom()
    # Pings every few seconds: a reader sees ping and pong frames between the messages.
    return await serve(room.handle, None, port, ping_interval=3, ping_timeout=10)


Report = Callable[[str, str, float], None]
"""(what, outcome, seconds it took) after each message a member sends."""


async def session(
    address: str,
    port: int,
    who: str,
    rng: random.Random,
    report: Report,
    pause: Callable[[float, float], Awaitable[None]],
) -> None:
    """One member's visit to the room: a few lines, an attachment, then goodbye."""
    uri = f"ws://{address}:{port}/chat?user={who}"
    async with connect(
        uri, user_agent_header=f"support-console/3.1 ({who})", open_timeout=5
    ) as websocket:
        for _ in range(rng.randint(3, 6)):
            line = rng.choice(LINES)
            started = time.monotonic()
            await websocket.send(json.dumps({"from": who, "text": line}))
            report(f"text {line[:30]}", "sent", time.monotonic() - started)
            await pause(0.5, 1.5)
        attachment = bytes(rng.getrandbits(8) for _ in range(48))
        started = time.monotonic()
        await websocket.send(attachment)
        report("binary 48 bytes", "sent", time.monotonic() - started)
        # A long paste crosses the wire as several fragments.
        started = time.monotonic()
        await websocket.send([f"log line {n}: all good\n" for n in range(6)])
        report("fragmented log paste", "sent", time.monotonic() - started)
        await pause(0.5, 1.0)
        started = time.monotonic()
        await websocket.close(1000, "bye")
        report("close", str(websocket.close_code), time.monotonic() - started)
