"""AgentStream and UpdateFanIn against a real websocket server that plays the agent.

The server here is small but speaks the real wire format (agent.wire) over real sockets, and
can be told to misbehave: drop the connection after N events, ignore the resume point, restart
with a new agent id, refuse the token, speak another protocol version.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from agent.events import PROTOCOL_VERSION, AnyEvent, DataReceived, EventsLost, Hello
from agent.wire import encode_batch
from tui.model.updates import AgentEvent, SourceStatus, Update
from tui.sources.stream import (
    AgentStream,
    Backoff,
    StreamEnded,
    UpdateFanIn,
    bearer_headers,
)

pytestmark = pytest.mark.timeout(20)

FAST = Backoff(first=0.01, limit=0.05)


def data(seq: int, conn: int = 0) -> DataReceived:
    return DataReceived(seq=seq, ts=1.0, conn=conn, direction="in", data=f"chunk {seq}".encode())


@dataclass
class FakeAgent:
    """Serves ``journal`` (events with seq 1..n) like the agent does, with knobs to misbehave."""

    agent_id: str = "agent-1"
    token: str | None = "secret"
    journal: list[AnyEvent] = field(default_factory=list)
    drop_after: list[int] = field(default_factory=list)
    """Per connection, in order: close after sending this many journal events."""
    ignore_resume: bool = False
    protocol: int = PROTOCOL_VERSION
    batch_size: int = 3
    oldest: int = 1
    """The oldest seq the journal still holds; a client resuming before it is told what it lost."""
    forget_on_drop: int = 0
    """When dropping a client, forget every event up to this seq (the journal overflowed)."""
    requests: list[str] = field(default_factory=list)
    server: Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def check_token(self, _: ServerConnection, request: Request) -> Response | None:
        self.requests.append(request.path)
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return Response(401, "Unauthorized", Headers(), b"bad token\n")
        return None

    async def handle(self, websocket: ServerConnection) -> None:
        query = parse_qs(urlsplit(websocket.request.path if websocket.request else "").query)
        after = int(query.get("after", ["0"])[0])
        if query.get("agent", [self.agent_id])[0] != self.agent_id or self.ignore_resume:
            after = 0
        hello = Hello(
            ts=1.0,
            protocol=self.protocol,
            version="test",
            agent_id=self.agent_id,
            target="netns/test",
            ports=[80],
            interfaces=["lo"],
            oldest_seq=1,
            next_seq=len(self.journal) + 1,
        )
        await websocket.send(encode_batch([hello]))
        if after + 1 < self.oldest:
            missed = self.oldest - after - 1
            lost = EventsLost(ts=1.0, first_seq=after + 1, count=missed, reason="journal")
            await websocket.send(encode_batch([lost]))
            after = self.oldest - 1
        pending = [event for event in self.journal if event.seq > after]
        limit = self.drop_after.pop(0) if self.drop_after else len(pending)
        pending = pending[:limit]
        for start in range(0, len(pending), self.batch_size):
            await websocket.send(encode_batch(pending[start : start + self.batch_size]))
        if limit < len([e for e in self.journal if e.seq > after]):
            # Cut the TCP connection without a closing handshake, as a dead link would.
            self.oldest = max(self.oldest, self.forget_on_drop + 1)
            websocket.transport.abort()
            return
        await websocket.wait_closed()

    async def start(self, port: int = 0) -> None:
        self.server = await serve(self.handle, "127.0.0.1", port, process_request=self.check_token)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def agent() -> AsyncIterator[FakeAgent]:
    fake = FakeAgent(journal=[data(seq) for seq in range(1, 11)])
    await fake.start()
    yield fake
    await fake.stop()


def connector(port_of: FakeAgent | int, token: str | None = "secret"):  # type: ignore[no-untyped-def]
    async def open_websocket(path: str) -> ClientConnection:
        port = port_of if isinstance(port_of, int) else port_of.port
        return await connect(
            f"ws://127.0.0.1:{port}{path}",
            additional_headers=bearer_headers(token),
            open_timeout=2,
        )

    return open_websocket


async def collect(
    updates: AsyncIterator[list[Update]] | AgentStream,
    until_seq: int | None = None,
    until_state: str | None = None,
) -> list[Update]:
    """Updates until the event with ``until_seq`` or a status in ``until_state`` arrives."""
    seen: list[Update] = []

    async def read() -> None:
        async for batch in updates:
            for update in batch:
                seen.append(update)
                if isinstance(update, AgentEvent) and update.event.seq == until_seq:
                    return
                if isinstance(update, SourceStatus) and update.state == until_state:
                    return

    await asyncio.wait_for(read(), 5)
    return seen


def journal_seqs(updates: Sequence[Update]) -> list[int]:
    return [u.event.seq for u in updates if isinstance(u, AgentEvent) and u.event.seq]


def states(updates: Sequence[Update]) -> list[str]:
    return [u.state for u in updates if isinstance(u, SourceStatus)]


async def test_delivers_hello_then_every_event_in_order(agent: FakeAgent) -> None:
    stream = AgentStream("local", connector(agent), "secret")
    updates = await collect(stream, until_seq=10)
    assert isinstance(updates[0], SourceStatus)
    assert updates[0].state == "live"
    assert isinstance(updates[1], AgentEvent)
    assert isinstance(updates[1].event, Hello)
    assert journal_seqs(updates) == list(range(1, 11))
    assert agent.requests == ["/v1/events?after=0"]


async def test_drops_resume_after_the_last_delivered_event(agent: FakeAgent) -> None:
    agent.drop_after = [4, 2]
    stream = AgentStream("local", connector(agent), "secret", backoff=FAST)
    updates = await collect(stream, until_seq=10)
    assert journal_seqs(updates) == list(range(1, 11))
    assert agent.requests == [
        "/v1/events?after=0",
        "/v1/events?after=4&agent=agent-1",
        "/v1/events?after=6&agent=agent-1",
    ]
    # Quick reconnections are reported as such, and never as a failure.
    assert states(updates) == ["live", "live", "live"]
    last_live = [u for u in updates if isinstance(u, SourceStatus)][-1]
    assert "resumed after event 6" in last_live.detail


async def test_events_repeated_by_the_agent_are_delivered_once(agent: FakeAgent) -> None:
    agent.drop_after = [5]
    agent.ignore_resume = True
    stream = AgentStream("local", connector(agent), "secret", backoff=FAST)
    updates = await collect(stream, until_seq=10)
    assert journal_seqs(updates) == list(range(1, 11))


async def test_a_restarted_agent_starts_over(agent: FakeAgent) -> None:
    agent.drop_after = [10]
    agent.journal.append(data(11))
    stream = AgentStream("local", connector(agent), "secret", backoff=FAST)
    updates: list[Update] = []
    iterator = aiter(stream)
    updates += await collect(iterator, until_seq=10)
    # The agent restarts: new id, its journal numbered from 1 again.
    agent.agent_id = "agent-2"
    agent.journal = [data(seq, conn=7) for seq in range(1, 4)]
    updates += await collect(iterator, until_seq=3)
    await iterator.aclose()  # type: ignore[attr-defined]
    assert journal_seqs(updates) == [*range(1, 11), 1, 2, 3]
    assert agent.requests[-1] == "/v1/events?after=10&agent=agent-1"
    restarted = [u for u in updates if isinstance(u, SourceStatus)][-1]
    assert restarted.state == "live"
    assert "restarted" in restarted.detail
    hellos = [u.event for u in updates if isinstance(u, AgentEvent) and isinstance(u.event, Hello)]
    assert [h.agent_id for h in hellos] == ["agent-1", "agent-2"]


async def test_events_lost_pass_through_and_are_not_asked_for_again(agent: FakeAgent) -> None:
    agent.drop_after = [1, 1]
    agent.forget_on_drop = 6
    stream = AgentStream("local", connector(agent), "secret", backoff=FAST)
    updates = await collect(stream, until_seq=10)
    events = [u.event for u in updates if isinstance(u, AgentEvent)]
    lost = [event for event in events if isinstance(event, EventsLost)]
    assert len(lost) == 1
    assert (lost[0].first_seq, lost[0].count) == (2, 5)
    assert agent.requests[1:] == [
        "/v1/events?after=1&agent=agent-1",
        "/v1/events?after=7&agent=agent-1",
    ]
    assert journal_seqs(updates) == [1, 7, 8, 9, 10]


async def test_a_refused_token_is_fatal_with_one_sentence(agent: FakeAgent) -> None:
    stream = aiter(AgentStream("local", connector(agent, token="wrong"), "wrong", backoff=FAST))
    updates = await collect(stream, until_state="failed")
    assert states(updates) == ["failed"]
    failed = updates[-1]
    assert isinstance(failed, SourceStatus)
    assert "token" in failed.detail
    # The stream ends after a fatal status.
    assert [batch async for batch in stream] == []
    assert len(agent.requests) == 1


async def test_another_protocol_version_is_fatal(agent: FakeAgent) -> None:
    agent.protocol = PROTOCOL_VERSION + 1
    stream = AgentStream("local", connector(agent), "secret", backoff=FAST)
    updates = await collect(stream, until_state="failed")
    failed = updates[-1]
    assert isinstance(failed, SourceStatus)
    assert "same podtap version" in failed.detail
    assert len(agent.requests) == 1


async def test_waits_for_an_agent_that_is_not_listening_yet() -> None:
    late = FakeAgent(journal=[data(1)])
    with contextlib.closing(__import__("socket").socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stream = AgentStream("local", connector(port), "secret", backoff=FAST)
    iterator = aiter(stream)
    first = await collect(iterator, until_state="reconnecting")
    assert isinstance(first[0], SourceStatus)
    assert "Cannot reach the agent" in first[0].detail
    await late.start(port)
    try:
        rest = await collect(iterator, until_seq=1)
    finally:
        await iterator.aclose()  # type: ignore[attr-defined]
        await late.stop()
    assert states(rest) == ["live"]
    assert journal_seqs(rest) == [1]


async def test_a_connector_that_knows_the_agent_is_gone_ends_the_stream() -> None:
    async def agent_exited(path: str) -> ClientConnection:
        raise StreamEnded("The agent exited: podtap needs root.", state="gone")

    updates = [u async for batch in AgentStream("local", agent_exited) for u in batch]
    assert updates == [SourceStatus("local", "gone", "The agent exited: podtap needs root.")]


async def test_fan_in_merges_sources_added_while_reading(agent: FakeAgent) -> None:
    second = FakeAgent(agent_id="agent-b", journal=[data(seq, conn=1) for seq in range(1, 6)])
    await second.start()
    fan = UpdateFanIn()
    fan.add("ns/a", AgentStream("ns/a", connector(agent), "secret"))
    seen: list[Update] = []
    try:
        async for batch in fan:
            seen += batch
            if journal_seqs([u for u in seen if isinstance(u, AgentEvent)]).count(10) == 1:
                break
        fan.add("ns/b", AgentStream("ns/b", connector(second), "secret"))
        async for batch in fan:
            seen += batch
            if sum(1 for u in seen if isinstance(u, AgentEvent) and u.source == "ns/b") == 6:
                break
    finally:
        await fan.aclose()
        await second.stop()
    by_source = {
        name: [u.event.seq for u in seen if isinstance(u, AgentEvent) and u.source == name]
        for name in ("ns/a", "ns/b")
    }
    assert by_source == {"ns/a": [0, *range(1, 11)], "ns/b": [0, *range(1, 6)]}


async def test_fan_in_ends_when_sealed_and_its_sources_finish() -> None:
    async def finite(name: str, count: int) -> AsyncIterator[list[Update]]:
        for index in range(count):
            yield [SourceStatus(name, "live", str(index))]
            await asyncio.sleep(0)

    fan = UpdateFanIn(max_pending=2)
    fan.add("a", finite("a", 50))
    fan.add("b", finite("b", 30))
    fan.put([SourceStatus("session", "starting")])
    fan.seal()
    seen = [u for batch in [b async for b in fan] for u in batch]
    assert len(seen) == 81
    for name, count in (("a", 50), ("b", 30)):
        details = [u.detail for u in seen if isinstance(u, SourceStatus) and u.source == name]
        assert details == [str(i) for i in range(count)]


async def test_fan_in_raises_what_a_source_raised() -> None:
    async def broken() -> AsyncIterator[list[Update]]:
        yield [SourceStatus("x", "live")]
        raise RuntimeError("boom")

    fan = UpdateFanIn()
    fan.add("x", broken())
    fan.seal()
    with pytest.raises(RuntimeError, match="boom"):
        async for _ in fan:
            pass


async def test_removing_a_source_stops_its_stream(agent: FakeAgent) -> None:
    fan = UpdateFanIn()
    fan.add("a", AgentStream("a", connector(agent), "secret"))
    async for batch in fan:
        if any(isinstance(u, AgentEvent) and u.event.seq == 10 for u in batch):
            break
    await fan.remove("a")
    assert fan.sources == []
    fan.seal()
    assert [b async for b in fan] == []


async def test_an_agent_away_for_a_while_is_announced_then_welcomed_back(
    agent: FakeAgent,
) -> None:
    port = agent.port
    stream = aiter(AgentStream("local", connector(port), "secret", backoff=FAST))
    try:
        before = await collect(stream, until_seq=10)
        await agent.stop()  # closes the stream and stops listening
        away = await collect(stream, until_state="reconnecting")
        agent.journal.append(data(11))
        await agent.start(port)
        back = await collect(stream, until_seq=11)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert journal_seqs(before + back) == list(range(1, 12))
    (notice,) = [u for u in away if isinstance(u, SourceStatus)]
    assert notice.detail.startswith("Lost the stream from the agent (the agent closed the stream")
    assert states(back) == ["live"]
    assert "resumed after event 10" in back[0].detail  # type: ignore[union-attr]
