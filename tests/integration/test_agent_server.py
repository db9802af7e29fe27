"""The event server with real websocket clients, fed by a producer thread instead of capture."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK, InvalidStatus

from agent.events import AnyEvent, DataReceived, EventsLost, Hello, Stats
from agent.journal import Journal
from agent.server import BATCH_BYTES, BATCH_EVENTS, AgentInfo, EventServer
from agent.wire import decode_batch

pytestmark = pytest.mark.timeout(30)

INFO = AgentInfo(
    agent_id="a1b2c3d4e5f6", version="test", target="host", ports=(80,), interfaces=("lo",)
)


def chunk(index: int, size: int = 100) -> DataReceived:
    return DataReceived(
        ts=time.time(), conn=0, direction="in", data=index.to_bytes(4) * (size // 4)
    )


async def started(journal: Journal, token: str | None = None, **options: Any) -> EventServer:
    server = EventServer(journal, INFO, token, **options)
    await server.start("127.0.0.1", 0)
    return server


def url(server: EventServer, query: str = "") -> str:
    assert server._server is not None
    port = server._server.sockets[0].getsockname()[1]
    return f"ws://127.0.0.1:{port}/v1/events{query}"


async def receive(connection: ClientConnection) -> list[AnyEvent]:
    message = await connection.recv()
    assert isinstance(message, bytes)
    return decode_batch(message)


async def collect_until(connection: ClientConnection, last_seq: int) -> list[AnyEvent]:
    """Events (Hello excluded) until one with ``last_seq`` arrives."""
    events: list[AnyEvent] = []
    while not events or events[-1].seq < last_seq:
        events += [e for e in await receive(connection) if not isinstance(e, Hello)]
    return events


@pytest.fixture
def journal() -> Journal:
    return Journal()


async def test_hello_comes_first_then_every_event_in_order(journal: Journal) -> None:
    server = await started(journal)
    journal.append([chunk(i) for i in range(10)])
    async with connect(url(server)) as client:
        first = await receive(client)
        hello = first[0]
        assert isinstance(hello, Hello)
        assert (hello.seq, hello.agent_id, hello.oldest_seq, hello.next_seq) == (
            0,
            INFO.agent_id,
            1,
            11,
        )
        journal.append([chunk(i) for i in range(10, 20)])  # arrives live, from the loop thread
        events = first[1:] + await collect_until(client, 20)
        assert [e.seq for e in events] == list(range(1, 21))
    await server.stop()


async def test_resume_after_a_seq_repeats_nothing_and_skips_nothing(journal: Journal) -> None:
    server = await started(journal)
    journal.append([chunk(i) for i in range(50)])
    async with connect(url(server, f"?after=37&agent={INFO.agent_id}")) as client:
        events = await collect_until(client, 50)
    assert [e.seq for e in events] == list(range(38, 51))
    await server.stop()


@pytest.mark.parametrize("size", [4, 180, BATCH_BYTES // BATCH_EVENTS, 4_000, 65_536])
async def test_every_message_fits_a_default_websockets_client(size: int) -> None:
    """Full batches, by event count or by bytes, stay under websockets' default 1 MiB limit
    (the client below keeps it), for any size of event up to the agent's largest."""
    journal = Journal()
    server = await started(journal)
    count = 3 * min(BATCH_EVENTS, max(BATCH_BYTES // size, 1)) + 1  # three full batches and one
    journal.append(
        [
            DataReceived(ts=time.time(), conn=2**31, direction="out", data=b"x" * size, seq=0)
            for _ in range(count)
        ]
    )
    async with connect(url(server)) as client:
        assert client.protocol.max_message_size == 1024 * 1024
        events = await collect_until(client, count)
    assert len(events) == count
    await server.stop()


async def test_a_client_of_a_previous_agent_starts_over_and_hears_what_it_missed() -> None:
    journal = Journal(max_events=10)
    server = await started(journal)
    journal.append([chunk(i) for i in range(30)])
    async with connect(url(server, "?after=25&agent=someone-else")) as client:
        events = await collect_until(client, 30)
    lost = events[0]
    assert isinstance(lost, EventsLost)
    assert (lost.first_seq, lost.count, lost.reason) == (1, 20, "journal")
    assert [e.seq for e in events[1:]] == list(range(21, 31))
    await server.stop()


async def test_wrong_or_missing_token_is_refused_with_401(journal: Journal) -> None:
    server = await started(journal, token="s3cret")
    for headers in ({"Authorization": "Bearer nope"}, {}):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url(server), additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401
        assert b"token" in refused.value.response.body
    async with connect(url(server), additional_headers={"Authorization": "Bearer s3cret"}) as ok:
        assert isinstance((await receive(ok))[0], Hello)
    await server.stop()


async def test_bad_path_and_bad_query_are_refused(journal: Journal) -> None:
    server = await started(journal)
    for target, status in (
        (url(server).replace("/v1/events", "/v2"), 404),
        (url(server, "?after=x"), 400),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(target):
                pass
        assert refused.value.response.status_code == status
    await server.stop()


async def test_stalled_client_neither_blocks_capture_nor_another_client() -> None:
    journal = Journal(max_events=2000, max_bytes=1 << 20)
    server = await started(journal, write_limit=64 * 1024, batch_events=100)
    total = 20_000  # 20k events of 1 KiB: 20 MB, far beyond what socket buffers absorb

    # The stalled client: a real websocket client that never calls recv(), over a socket with a
    # tiny receive buffer so that back-pressure reaches the agent quickly.
    stalled_sock = socket.socket()
    stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert server._server is not None
    stalled_sock.connect(server._server.sockets[0].getsockname())
    stalled = await connect(url(server), sock=stalled_sock, max_queue=1, close_timeout=0.5)
    reader = await connect(url(server), close_timeout=0.5)
    try:
        await _stalled_client_scenario(journal, total, stalled, reader)
    finally:
        # Whatever failed, leave nothing for the event loop's teardown to wait on.
        stalled.transport.abort()
        reader.transport.abort()
        await server.stop()


async def _stalled_client_scenario(
    journal: Journal, total: int, stalled: ClientConnection, reader: ClientConnection
) -> None:
    append_seconds: list[float] = []
    received: list[AnyEvent] = []

    def produce() -> None:
        for batch in range(total // 100):
            # Never more than 400 KiB (of the journal's 1 MiB) ahead of the healthy reader: on a
            # starved machine a slow test process must not look like a server that let the
            # stalled client block the others. The stalled client, which reads nothing, still
            # falls some 18k events behind.
            deadline = time.monotonic() + 30
            while batch * 100 - len(received) > 400 and time.monotonic() < deadline:
                time.sleep(0.001)
            began = time.perf_counter()
            journal.append([chunk(batch * 100 + i, 1024) for i in range(100)])
            append_seconds.append(time.perf_counter() - began)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        while not received or received[-1].seq < total:
            received += [e for e in await receive(reader) if not isinstance(e, Hello)]
    finally:
        await asyncio.to_thread(producer.join)

    # The reader kept up with a journal of only 2,000 events: it was never overtaken.
    assert [e.seq for e in received] == list(range(1, total + 1))
    assert max(append_seconds) < 0.5  # capture never waited for the stalled client

    # Now the stalled client reads: what it had buffered, one notice, then the newest events.
    events = await collect_until(stalled, total)
    notices = [e for e in events if isinstance(e, EventsLost)]
    assert len(notices) == 1
    notice = notices[0]
    assert notice.reason == "slow-client"
    before = [e.seq for e in events[: events.index(notice)]]
    after = [e.seq for e in events[events.index(notice) + 1 :]]
    assert before == list(range(1, notice.first_seq))
    assert after == list(range(notice.first_seq + notice.count, total + 1))
    assert notice.count > total // 2


async def test_stop_flushes_what_is_journaled_then_closes_with_going_away(journal: Journal) -> None:
    server = await started(journal)
    async with connect(url(server)) as client:
        await receive(client)  # Hello
        journal.append([chunk(i) for i in range(5)])
        stopping = asyncio.create_task(server.stop())
        events = await collect_until(client, 5)
        with pytest.raises(ConnectionClosedOK) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
        await stopping
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]


async def test_stop_does_not_hang_on_a_client_that_reads_nothing() -> None:
    journal = Journal()
    server = await started(journal, write_limit=16 * 1024, close_timeout=1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert server._server is not None
    sock.connect(server._server.sockets[0].getsockname())
    stalled = await connect(url(server), sock=sock, max_queue=1, close_timeout=0.5)
    journal.append([chunk(i, 64 * 1024) for i in range(200)])
    await asyncio.sleep(0.3)
    began = time.monotonic()
    await server.stop(flush_timeout=0.5)
    assert time.monotonic() - began < 1.5  # the flush time, not the close timeout
    await stalled.close()


async def test_a_client_behind_is_told_where_the_capture_is_out_of_the_journal() -> None:
    """A client that is behind hears, with the batches it reads, how far the journal is ahead
    and the newest Stats (what the capture lost): seq 0 notices it can count on at once."""
    journal = Journal()
    server = await started(journal, batch_events=100)
    stats = Stats(
        ts=time.time(),
        packets=9,
        bytes=900,
        kernel_packets=12,
        kernel_drops=3,
        open_connections=1,
        gaps=0,
        gap_bytes=0,
    )
    journal.append([*[chunk(i) for i in range(1000)], stats])
    async with connect(url(server)) as client:
        (hello,) = await receive(client)
        assert isinstance(hello, Hello)
        *events, where, latest = await receive(client)
        assert [e.seq for e in events] == list(range(1, 101))
        assert isinstance(where, Hello)
        assert (where.seq, where.next_seq) == (0, 1002)
        assert isinstance(latest, Stats)
        assert (latest.seq, latest.kernel_drops) == (0, 3)
        assert stats.seq == 1001  # the journaled one keeps its place
    await server.stop()
