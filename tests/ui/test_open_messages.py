"""``podtap open`` on a recording of gRPC calls (grpcio client and server) and a WebSocket chat
(the ``websockets`` library's peers): the detail pane shows a call's messages decoded without
the schema, with its gRPC status, and the chat as a conversation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from textual.pilot import Pilot

from agent.events import ConnectionClosed, ConnectionOpened, DataReceived, Direction
from tests.hostile_traffic import MARK
from tests.ui.driving import frozen_clock, screen_text
from tests.unit.h2_streams import recording
from tests.unit.ws_streams import Peers, chat
from tui.model.secrets import MASK
from tui.model.updates import AgentEvent
from tui.output.jsonl import JsonLinesWriter, RecordingHeader
from tui.sources.recording import RecordingSession
from tui.views.app import PodtapApp

pytestmark = pytest.mark.timeout(60)

SIZE = (180, 70)
T0 = 1_790_000_000.0
GRPC_CONN, WS_CONN = 0, 1
HANDSHAKE = (
    b"GET /room HTTP/1.1\r\nHost: chat.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def connection_events(
    conn: int, port: int, chunks: list[tuple[Direction, bytes]]
) -> list[AgentEvent]:
    start = T0 + 10 * conn
    events: list[AgentEvent] = [
        AgentEvent(
            "local",
            ConnectionOpened(
                ts=start,
                conn=conn,
                client="10.0.0.1",
                client_port=41000 + conn,
                server="10.0.0.2",
                server_port=port,
            ),
        )
    ]
    for index, (direction, data) in enumerate(chunks):
        chunk = DataReceived(
            ts=start + 0.1 * (index + 1), conn=conn, direction=direction, data=data
        )
        events.append(AgentEvent("local", chunk))
    closed = ConnectionClosed(ts=start + 0.1 * (len(chunks) + 1), conn=conn, reason="fin")
    events.append(AgentEvent("local", closed))
    return events


def write_recording(path: Path) -> None:
    """A gRPC connection (unary, streaming, bidi and a NOT_FOUND call) and a WebSocket chat
    (compressed, with a fragmented message, ping, pong and a close handshake)."""
    conversation = chat(deflate=True)
    accept = "HTTP/1.1 101 Switching Protocols\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in conversation.response_headers
    )
    ws: list[tuple[Direction, bytes]] = [("in", HANDSHAKE), ("out", accept.encode() + b"\r\n")]
    events = connection_events(GRPC_CONN, 50051, list(recording("grpc-calls")))
    events += connection_events(WS_CONN, 8765, ws + conversation.chunks)
    with path.open("wb") as stream:
        JsonLinesWriter(stream, RecordingHeader("0.1.0", "netns/demo", [50051, 8765])).write(events)


async def show(pilot: Pilot[None], conn: int, exchange: int, heading: str) -> str:
    """Select connection ``conn``'s exchange ``exchange``; the screen's text once the detail
    pane shows ``heading``."""
    app = pilot.app
    assert isinstance(app, PodtapApp)
    main = app.main_screen
    table = main.connections_table
    table.move_cursor_to(next(i for i, c in enumerate(table.rows) if c.conn == conn))
    await pilot.pause()
    requests = main.exchanges_table
    for _ in range(100):
        if any(ex.key[1] == conn and ex.index == exchange for ex in requests.rows):
            break
        await pilot.pause(0.05)
    requests.focus()
    requests.move_cursor_to(next(i for i, ex in enumerate(requests.rows) if ex.index == exchange))
    for _ in range(100):
        await pilot.pause(0.05)
        text = screen_text(app)
        if heading in text:
            return text
    raise AssertionError(f"{heading!r} never showed; the screen was:\n{text}")


async def test_open_shows_grpc_messages_decoded_and_a_websocket_conversation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "calls-and-chat.jsonl"
    write_recording(path)
    app = PodtapApp(RecordingSession(path, []), title=f"podtap {path.name}", clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        async with asyncio.timeout(20):
            await app.stream_finished.wait()
        app.draw()
        await pilot.pause()
        protocols = {c.conn: c.protocol for c in app.main_screen.connections_table.rows}
        assert protocols == {GRPC_CONN: "grpc", WS_CONN: "ws"}

        # The server-streaming call: its request and three replies, read without the schema.
        text = await show(pilot, GRPC_CONN, 1, "POST /podtap.demo.Greeter/Count HTTP/2")
        assert "POST /podtap.demo.Greeter/Count HTTP/2" in text
        assert '1: "abc"' in text
        assert "1: 1000" in text
        assert "1: 3000" in text
        # The call that failed: its status by name, in the table and the pane, and its message.
        text = await show(pilot, GRPC_CONN, 4, "no such person: nobody")
        assert "NOT_FOUND" in text
        assert '1: "nobody"' in text
        assert "no such person: nobody" in text

        # The chat: both directions in order, inflated, the fragments joined, the close said.
        text = await show(pilot, WS_CONN, 0, "GET /room HTTP/1.1")
        assert "101 Switching Protocols" in text
        assert "hello, is anyone there?" in text
        assert "hello! welcome to the room" in text
        pane = app.main_screen.detail
        lines = pane.text.splitlines()
        said = [
            next(i for i, line in enumerate(lines) if words in line)
            for words in (
                "hello, is anyone there?",
                "hello! welcome to the room",
                "fragmented message",
                "the same line, again and again, number 2",
                "é ünïcödé ✓",
                "1000 normal closure: bye",
            )
        ]
        assert said == sorted(said)
        # Scrolled to its end, the pane shows the end of the conversation.
        pane.focus()
        await pilot.press("end")
        for _ in range(100):  # the scroll may be animated
            await pilot.pause(0.05)
            text = screen_text(app)
            if "1000 normal closure: bye" in text and "hello, is anyone there?" not in text:
                break
        assert "hello, is anyone there?" not in text
        assert "é ünïcödé ✓" in text
        assert "1000 normal closure: bye" in text


async def test_secrets_in_messages_are_masked_on_screen_until_s(tmp_path: Path) -> None:
    peers = Peers(deflate=True)
    peers.text("in", json.dumps({"user": "alice", "access_token": f"{MARK}-json"}))
    peers.text("out", f"welcome; session={MARK}-pair")
    accept = "HTTP/1.1 101 Switching Protocols\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in peers.conversation.response_headers
    )
    ws: list[tuple[Direction, bytes]] = [("in", HANDSHAKE), ("out", accept.encode() + b"\r\n")]
    path = tmp_path / "secret-chat.jsonl"
    events = connection_events(WS_CONN, 8765, ws + peers.conversation.chunks)
    with path.open("wb") as stream:
        JsonLinesWriter(stream, RecordingHeader("0.1.0", "netns/demo", [8765])).write(events)
    app = PodtapApp(RecordingSession(path, []), title=f"podtap {path.name}", clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        async with asyncio.timeout(20):
            await app.stream_finished.wait()
        app.draw()
        await pilot.pause()
        text = await show(pilot, WS_CONN, 0, "welcome; session=")
        assert MARK not in text
        assert f'"access_token": "{MASK}"' in text
        assert f"session={MASK}" in text
        await pilot.press("s")
        for _ in range(100):
            await pilot.pause(0.05)
            text = screen_text(app)
            if f"session={MARK}-pair" in text:
                break
        assert f"{MARK}-json" in text
        assert f"session={MARK}-pair" in text
