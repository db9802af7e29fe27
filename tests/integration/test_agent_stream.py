"""The agent end to end: a real server in a namespace, curl on the host, websocket clients.

The server records every byte it received and sent on each connection, so what the agent
streamed can be compared byte for byte with what really crossed the wire.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus

from agent.events import (
    AnyEvent,
    ConnectionOpened,
    DataReceived,
    EventsLost,
    Gap,
    Hello,
)
from agent.events import (
    ConnectionClosed as Closed,
)
from tests.integration.agent_process import receive, running_agent
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.timeout(90)]

PORT = 8080

# A deliberately plain HTTP/1.1 server: one request per connection, GET /bytes/N answers N
# pseudo-random bytes, a request body is read by Content-Length. It writes what it received
# and what it sent on connection K to DIR/K.in and DIR/K.out.
RECORDING_SERVER = r"""
import os, random, socket, sys
port, directory = int(sys.argv[1]), sys.argv[2]
server = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
print("ready", flush=True)
count = 0
def serve(conn, count):
    received = bytearray()
    while b"\r\n\r\n" not in received:
        chunk = conn.recv(65536)
        if not chunk:
            break
        received += chunk
    head = bytes(received).split(b"\r\n\r\n", 1)[0]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(received) < len(head) + 4 + length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        received += chunk
    target = head.split(b" ")[1].decode()
    size = int(target.rsplit("/", 1)[1]) if target.startswith("/bytes/") else 0
    body = random.Random(count).randbytes(size)
    sent = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size + body
    conn.sendall(sent)
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(65536):
        pass
    conn.close()
    # Written aside, then renamed: a test that sees the file must never read half of it.
    for suffix, data in (("in", received), ("out", sent)):
        with open(f"{directory}/.{count}.{suffix}", "wb") as f:
            f.write(data)
        os.rename(f"{directory}/.{count}.{suffix}", f"{directory}/{count}.{suffix}")
while True:
    conn, _ = server.accept()
    count += 1
    try:
        serve(conn, count)
    except OSError:  # the client went away (a test killed it)
        conn.close()
"""


@pytest.fixture
def recording_server(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    server = lab.popen(
        [sys.executable, "-c", RECORDING_SERVER, str(PORT), str(tmp_path)],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == b"ready\n"
        yield tmp_path
    finally:
        server.kill()
        server.wait(5)


def agent_args(lab: Lab, *extra: str) -> list[str]:
    return ["--netns", lab.name, "--port", str(PORT), "--first-client-timeout", "30", *extra]


_clients: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def no_client_left_behind() -> Iterator[None]:
    """A curl whose namespace is gone would wait forever: end them all after each test."""
    yield
    while _clients:
        client = _clients.pop()
        if client.poll() is None:
            client.kill()
        client.wait(5)


def curl(lab: Lab, path: str, *options: str) -> subprocess.Popen[bytes]:
    client = subprocess.Popen(
        ["curl", "-sS", "-o", "/dev/null", *options, f"http://{lab.ns_ip}:{PORT}{path}"],
        stderr=subprocess.PIPE,
    )
    _clients.append(client)
    return client


def wait_for_file(path: Path, timeout: float = 20) -> bytes:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    time.sleep(0.05)  # written in one go right after the connection closed
    return path.read_bytes()


class Transcript:
    """What a client has received, checked for order and uniqueness as it grows."""

    def __init__(self) -> None:
        self.events: list[AnyEvent] = []
        self.last_seq = 0

    def add(self, events: list[AnyEvent]) -> None:
        for event in events:
            if event.seq == 0:  # Hello and the other per-client notices: not journaled
                continue
            assert event.seq == self.last_seq + 1, f"seq {event.seq} after {self.last_seq}"
            self.last_seq = event.seq
            self.events.append(event)

    def stream(self, conn: int, direction: str) -> bytes:
        return b"".join(
            e.data
            for e in self.events
            if isinstance(e, DataReceived) and e.conn == conn and e.direction == direction
        )

    def closed(self, conn: int) -> Closed | None:
        return next((e for e in self.events if isinstance(e, Closed) and e.conn == conn), None)

    def data_bytes(self) -> int:
        return sum(len(e.data) for e in self.events if isinstance(e, DataReceived))


async def read_until(
    client: ClientConnection, transcript: Transcript, done: Callable[[], bool]
) -> None:
    async with asyncio.timeout(30):
        while not done():
            transcript.add(await receive(client))


def received_more_than(transcript: Transcript, size: int) -> Callable[[], bool]:
    return lambda: transcript.data_bytes() > size


async def read_until_closed(client: ClientConnection, transcript: Transcript) -> ConnectionClosed:
    async with asyncio.timeout(30):
        try:
            while True:
                transcript.add(await receive(client))
        except ConnectionClosed as closed:
            return closed


async def test_websocket_cut_mid_transfer_loses_and_repeats_nothing(
    lab: Lab, recording_server: Path
) -> None:
    upload = os.urandom(3_000_000)
    upload_file = recording_server / "upload"
    upload_file.write_bytes(upload)
    with running_agent(agent_args(lab)) as agent:
        transcript = Transcript()
        client = await connect(agent.url())
        hello = (await receive(client))[0]
        assert isinstance(hello, Hello)
        assert hello.agent_id == agent.agent_id
        # ~1.5 s of transfer in each direction, so that the cuts fall in the middle of it.
        transfer = curl(
            lab, "/bytes/12000000", "--limit-rate", "8M", "--data-binary", f"@{upload_file}"
        )
        cuts = 0
        for threshold, abrupt in ((1_000_000, False), (4_000_000, True), (8_000_000, False)):
            await read_until(client, transcript, received_more_than(transcript, threshold))
            if abrupt:  # as when a port-forward dies: no closing handshake, batches in flight
                client.transport.abort()
            else:
                await client.close()
            cuts += 1
            client = await connect(agent.url(transcript.last_seq, agent.agent_id))
            assert isinstance((await receive(client))[0], Hello)
        await read_until(client, transcript, lambda: transcript.closed(0) is not None)
        await client.close()
        assert transfer.wait(30) == 0

    assert cuts == 3
    opened = transcript.events[0]
    assert isinstance(opened, ConnectionOpened)
    assert (opened.server, opened.server_port, opened.mid_stream) == (lab.ns_ip, PORT, False)
    assert not [e for e in transcript.events if isinstance(e, (Gap, EventsLost))]
    assert transcript.stream(0, "in") == wait_for_file(recording_server / "1.in")
    assert transcript.stream(0, "out") == wait_for_file(recording_server / "1.out")
    assert transcript.stream(0, "in").endswith(upload)


async def test_stalled_client_does_not_stall_capture_or_another_client(
    lab: Lab, recording_server: Path
) -> None:
    # A small journal, yet larger than one capture burst (up to 8 ring blocks of 1 MiB).
    small_journal = ("--journal-events", "3000", "--journal-bytes", "16000000")
    with running_agent(agent_args(lab, *small_journal)) as agent:
        host, port = agent.listening.rsplit(":", 1)
        # A small receive buffer (set before connecting, so that the window matches it) makes
        # back-pressure reach the agent quickly.
        stalled_sock = socket.socket()
        stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled_sock.connect((host, int(port)))
        stalled = await connect(agent.url(), sock=stalled_sock, max_queue=1, close_timeout=1)
        reader = await connect(agent.url())
        transcript = Transcript()
        transfer = curl(lab, "/bytes/40000000", "--limit-rate", "12M")
        await read_until(reader, transcript, lambda: transcript.closed(0) is not None)
        assert transfer.wait(30) == 0

        # The reader got everything, in time, although the other client read nothing at all.
        assert not [e for e in transcript.events if isinstance(e, (Gap, EventsLost))]
        assert transcript.stream(0, "out") == wait_for_file(recording_server / "1.out")

        # The stalled client now reads: what was buffered for it, one loss notice, the rest.
        late = Transcript()
        notices: list[EventsLost] = []
        async with asyncio.timeout(30):
            while late.last_seq < transcript.last_seq:
                for event in await receive(stalled):
                    if isinstance(event, EventsLost):
                        notices.append(event)
                        late.last_seq = event.first_seq + event.count - 1
                    else:
                        late.add([event])
        assert len(notices) == 1
        assert notices[0].reason == "slow-client"
        assert notices[0].first_seq > 1
        assert notices[0].count >= 100  # megabytes of data it could not take
        await stalled.close()
        await reader.close()


async def test_wrong_token_is_refused_with_401(lab: Lab) -> None:
    env_token = {"PODTAP_TOKEN": "from-the-environment"}
    with running_agent(agent_args(lab, "--token", "right")) as agent:
        for headers in ({"Authorization": "Bearer wrong"}, {}):
            with pytest.raises(InvalidStatus) as refused:
                await connect(agent.url(), additional_headers=headers)
            assert refused.value.response.status_code == 401
        async with connect(agent.url(), additional_headers={"Authorization": "Bearer right"}) as ok:
            assert isinstance((await receive(ok))[0], Hello)
    os.environ.update(env_token)
    try:
        with running_agent(agent_args(lab)) as agent:
            with pytest.raises(InvalidStatus):
                await connect(agent.url())
            headers = {"Authorization": "Bearer from-the-environment"}
            async with connect(agent.url(), additional_headers=headers) as ok:
                assert isinstance((await receive(ok))[0], Hello)
    finally:
        del os.environ["PODTAP_TOKEN"]


async def test_sigterm_closes_open_connections_then_clients_then_exits_0(
    lab: Lab, recording_server: Path
) -> None:
    with running_agent(agent_args(lab)) as agent:
        transcript = Transcript()
        client = await connect(agent.url())
        transfer = curl(lab, "/bytes/50000000", "--limit-rate", "2M")
        await read_until(client, transcript, lambda: transcript.data_bytes() > 100_000)
        agent.process.terminate()
        closed = await read_until_closed(client, transcript)
        assert isinstance(closed, ConnectionClosedOK)
        assert closed.rcvd is not None
        assert closed.rcvd.code == 1001
        assert agent.wait(10) == 0
        assert "Traceback" not in agent.stderr_text()
        transfer.kill()
        transfer.wait()
    final = transcript.closed(0)
    assert final is not None
    assert final.reason == "shutdown"


async def test_clients_come_and_go_as_they_like(lab: Lab) -> None:
    """Several clients at once, each with its own cursor; one leaving disturbs nobody."""
    with running_agent(agent_args(lab)) as agent:
        first = await connect(agent.url())
        second = await connect(agent.url())
        await first.close()
        # Stats arrive once a second even without traffic: the second client still gets them.
        async with asyncio.timeout(5):
            events = (await receive(second)) + (await receive(second))
        assert isinstance(events[0], Hello)
        assert any(e.__class__.__name__ == "Stats" for e in events[1:])
        await second.close()
    with pytest.raises(ConnectionClosed):
        await second.recv()
