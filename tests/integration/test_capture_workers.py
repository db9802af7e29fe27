"""The agent with capture workers (``--workers N``): PACKET_FANOUT members in forked processes.

Real agent processes capture a lab namespace where a Python echo server runs; the host side
opens connections concurrently. Every byte of both directions must arrive exactly once, under
ids unique across workers, and a worker's death must end the agent with one sentence.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from agent.capture import NEW_FANOUT_GROUP, Capture
from agent.events import (
    AnyEvent,
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    Gap,
    Stats,
)
from agent.netns import named_namespace
from tests.integration.agent_process import RunningAgent, agent_command, receive, running_agent
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]

PORT = 8080
ECHO_SERVER = """
import socket, threading
server = socket.create_server(("0.0.0.0", 8080), backlog=512)
print("ready", flush=True)
def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
while True:
    threading.Thread(target=echo, args=(server.accept()[0],), daemon=True).start()
"""


@contextmanager
def echo_server(lab: Lab) -> Iterator[None]:
    server = lab.popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == b"ready\n"
        yield
    finally:
        server.kill()
        server.wait()


def worker_pids(agent: RunningAgent) -> list[int]:
    pid = agent.process.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def talk(host: str, index: int) -> tuple[int, bytes]:
    """One client: three messages, each echoed before the next; (client port, bytes sent)."""
    reader, writer = await asyncio.open_connection(host, PORT)
    port = writer.get_extra_info("sockname")[1]
    sent = b""
    for part in range(3):
        message = f"client {index} part {part} ".encode() * (1 + index % 7 * 50)
        writer.write(message)
        await writer.drain()
        assert await reader.readexactly(len(message)) == message
        sent += message
    writer.close()
    await writer.wait_closed()
    return port, sent


async def collect_until(
    client: ClientConnection, done: asyncio.Event, events: list[AnyEvent], closes: int
) -> None:
    while True:
        batch = await receive(client)
        events.extend(batch)
        if sum(isinstance(e, ConnectionClosed) for e in events) >= closes:
            done.set()


async def test_every_byte_of_both_directions_exactly_once_with_two_workers(lab: Lab) -> None:
    connections = 100
    with (
        echo_server(lab),
        running_agent(["--netns", lab.name, "-p", str(PORT), "--workers", "2"]) as agent,
    ):
        assert len(worker_pids(agent)) == 2
        async with connect(agent.url(), max_size=None) as client:
            events: list[AnyEvent] = []
            done = asyncio.Event()
            collector = asyncio.create_task(collect_until(client, done, events, connections))
            await asyncio.sleep(0.3)  # the Hello and the first Stats; capture is already open
            sent = dict(await asyncio.gather(*(talk(lab.ns_ip, i) for i in range(connections))))
            try:
                await asyncio.wait_for(done.wait(), 15)
                # Workers report each second, and their sum is journaled each second.
                await asyncio.sleep(2.2)
            finally:
                collector.cancel()
    opened = [e for e in events if isinstance(e, ConnectionOpened)]
    assert sorted(e.client_port for e in opened) == sorted(sent)
    ids = [e.conn for e in opened]
    assert sorted(ids) == list(range(connections))  # numbered in order, whichever worker
    port_of = {e.conn: e.client_port for e in opened}
    streams: dict[tuple[int, str], bytearray] = defaultdict(bytearray)
    for event in events:
        assert not isinstance(event, Gap), event
        if isinstance(event, DataReceived):
            streams[(event.conn, event.direction)] += event.data
    for conn, port in port_of.items():
        assert streams[(conn, "in")] == sent[port]
        assert streams[(conn, "out")] == sent[port]
    closed = [e.conn for e in events if isinstance(e, ConnectionClosed)]
    assert sorted(closed) == sorted(ids)
    seqs = [e.seq for e in events if e.seq != 0]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    stats = [e for e in events if isinstance(e, Stats)]
    assert stats, "the workers' Stats are summed into the agent's"
    # Payload bytes counted by the workers, summed: every message and its echo (and any
    # retransmission).
    assert stats[-1].bytes >= 2 * sum(len(data) for data in sent.values())
    assert stats[-1].kernel_drops == 0


def test_a_dead_worker_stops_the_agent_with_one_sentence(lab: Lab) -> None:
    with running_agent(["--netns", lab.name, "-p", str(PORT), "--workers", "2"]) as agent:
        victim, survivor = worker_pids(agent)
        os.kill(victim, signal.SIGKILL)
        assert agent.wait(10) == 1
        stderr = agent.stderr_text()
        assert "Traceback" not in stderr
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("podtap agent: Capture worker 1 of 2")
        assert "killed by SIGKILL" in last
        deadline = time.monotonic() + 5
        while alive(survivor) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(survivor)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_no_worker_outlives_the_agent(lab: Lab, signum: signal.Signals) -> None:
    with running_agent(["--netns", lab.name, "-p", str(PORT), "--workers", "3"]) as agent:
        workers = worker_pids(agent)
        assert len(workers) == 3
        agent.process.send_signal(signum)
        agent.wait(10)
        if signum == signal.SIGTERM:
            assert agent.process.returncode == 0
            assert "Traceback" not in agent.stderr_text()
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers)


@pytest.mark.parametrize("value", ["0", "many", "65"])
def test_a_wrong_worker_count_is_one_sentence(value: str) -> None:
    result = subprocess.run(
        agent_command(["--host", "-p", "9", "--workers", value]),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"podtap agent: --workers {value!r} is not a count of capture processes; "
        "give 'auto' or a number from 1 to 64."
    ]


async def test_two_agents_on_one_namespace_each_see_every_connection(lab: Lab) -> None:
    """Each agent's workers form a fanout group of their own (an id the kernel picks), so
    two agents never split each other's traffic."""
    connections = 20
    args = ["--netns", lab.name, "-p", str(PORT), "--workers", "2"]
    with echo_server(lab), running_agent(args) as first, running_agent(args) as second:
        async with (
            connect(first.url(), max_size=None) as first_client,
            connect(second.url(), max_size=None) as second_client,
        ):
            seen: list[list[AnyEvent]] = [[], []]
            done = [asyncio.Event(), asyncio.Event()]
            collectors = [
                asyncio.create_task(collect_until(client, flag, events, connections))
                for client, flag, events in zip(
                    (first_client, second_client), done, seen, strict=True
                )
            ]
            await asyncio.sleep(0.3)
            sent = dict(await asyncio.gather(*(talk(lab.ns_ip, i) for i in range(connections))))
            try:
                await asyncio.wait_for(asyncio.gather(*(flag.wait() for flag in done)), 15)
            finally:
                for collector in collectors:
                    collector.cancel()
    for events in seen:
        ports = sorted(e.client_port for e in events if isinstance(e, ConnectionOpened))
        assert ports == sorted(sent)


def test_the_kernel_picks_a_fanout_group_no_one_else_uses(lab: Lab) -> None:
    namespace = named_namespace(lab.name)
    with (
        Capture(namespace, [PORT], block_count=2, fanout_group=NEW_FANOUT_GROUP) as first,
        Capture(namespace, [PORT], block_count=2, fanout_group=NEW_FANOUT_GROUP) as second,
    ):
        assert first.fanout_group is not None
        assert second.fanout_group is not None
        assert first.fanout_group != second.fanout_group
        with Capture(namespace, [PORT], block_count=2, fanout_group=first.fanout_group) as third:
            assert third.fanout_group == first.fanout_group
