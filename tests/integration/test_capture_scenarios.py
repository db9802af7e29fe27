"""Capture + Reassembler against real traffic: a recording HTTP server in a lab namespace, real
clients on the host (curl, Python sockets). For each scenario, every byte of both directions
must come out of the reassembler in order, exactly once: compared with what the server logged
as received and sent (and, where the client knows better, what the client sent)."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.capture import Capture
from agent.events import AnyEvent, ConnectionClosed, ConnectionOpened, DataReceived, Gap
from agent.netns import NamespaceRef, host_namespace, named_namespace, pid_namespace
from agent.tcp import Reassembler
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.timeout(90)]

REPO = Path(__file__).resolve().parents[2]
PORT = 8080
CURL = ["curl", "-sS", "--noproxy", "*"]


# --- the server (runs inside the lab namespace, in its own process) -------------------------


def body_of(size: int) -> bytes:
    """Deterministic bytes that make any reordering or duplication visible."""
    return random.Random(size).randbytes(size)


class _RecordingHttp(asyncio.Protocol):
    """HTTP/1.1 keep-alive and pipelining; ``GET /bytes/N`` answers N bytes. Logs every byte
    received and sent on the connection, as the kernel handed them over, when it ends."""

    def __init__(self, log: Callable[[dict[str, object]], None]) -> None:
        self._log = log
        self._received = bytearray()
        self._sent = bytearray()
        self._pending = bytearray()
        self._peer_port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._peer_port = transport.get_extra_info("peername")[1]

    def data_received(self, data: bytes) -> None:
        self._received += data
        self._pending += data
        while (end := self._pending.find(b"\r\n\r\n")) >= 0:
            head = bytes(self._pending[: end + 4])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self._pending) < end + 4 + length:
                return
            del self._pending[: end + 4 + length]
            target = head.split(b" ", 2)[1]
            size = int(target.rsplit(b"/", 1)[1]) if target.startswith(b"/bytes/") else 2
            response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + body_of(size)
            self._transport.write(response)
            self._sent += response
            if b"connection: close" in head.lower():
                self._transport.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self._log(
            {
                "port": self._peer_port,
                "received": base64.b64encode(self._received).decode(),
                "sent": base64.b64encode(self._sent).decode(),
            }
        )


def serve(port: int, log_path: str) -> None:
    """Entry point of the server process: dual-stack on ``port``, one JSON line per connection."""

    log_file = open(log_path, "a")  # noqa: SIM115 - lives as long as the process

    async def main() -> None:
        with log_file:

            def log(entry: dict[str, object]) -> None:
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()

            loop = asyncio.get_running_loop()
            # No host: asyncio listens on IPv4 and IPv6 alike.
            server = await loop.create_server(lambda: _RecordingHttp(log), port=port)
            print("ready", flush=True)
            await server.serve_forever()

    asyncio.run(main())


def server_log(path: Path) -> dict[int, tuple[bytes, bytes]]:
    """client port -> (bytes the server received, bytes it sent), for connections ended."""
    entries = {}
    complete_lines = path.read_text().split("\n")[:-1]  # the last one may be half written
    for line in complete_lines:
        entry = json.loads(line)
        entries[entry["port"]] = (
            base64.b64decode(entry["received"]),
            base64.b64decode(entry["sent"]),
        )
    return entries


def wait_for_server_log(
    path: Path, count: int, timeout: float = 20
) -> dict[int, tuple[bytes, bytes]]:
    deadline = time.monotonic() + timeout
    while len(entries := server_log(path)) < count:
        assert time.monotonic() < deadline, f"server logged {len(entries)} of {count}"
        time.sleep(0.05)
    return entries


@dataclass
class Served:
    lab: Lab
    log_path: Path
    pid: int

    def wait_for_log(self, count: int) -> dict[int, tuple[bytes, bytes]]:
        return wait_for_server_log(self.log_path, count)


@pytest.fixture
def served(lab: Lab, tmp_path: Path) -> Iterator[Served]:
    log_path = tmp_path / "server.jsonl"
    log_path.touch()
    server = lab.popen(
        [
            sys.executable,
            "-c",
            f"from tests.integration.test_capture_scenarios import serve; "
            f"serve({PORT}, {str(log_path)!r})",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == b"ready\n"
        yield Served(lab, log_path, server.pid)
    finally:
        server.kill()
        server.wait()


# --- the capture side: Capture -> Reassembler in a thread, as the agent runs them ------------


@dataclass
class Conversation:
    opened: ConnectionOpened
    inbound: bytearray = field(default_factory=bytearray)
    outbound: bytearray = field(default_factory=bytearray)
    gaps: int = 0
    closed: str | None = None


class Tap:
    def __init__(self, namespace: NamespaceRef, ports: list[int]) -> None:
        self._capture = Capture(namespace, ports)
        self._reassembler = Reassembler(frozenset(ports))
        self._events: list[AnyEvent] = []
        self.duplicates = 0  # segments captured twice (the reassembler would hide them)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seen: set[tuple[object, ...]] = set()
        while not self._stop.is_set():
            for ts, interface, segment in self._capture.read_batch(0.05):
                copy = (interface, *segment[:7], len(segment.payload))
                if copy in seen:
                    self.duplicates += 1
                seen.add(copy)
                events = self._reassembler.feed(segment, ts, interface)
                if events:
                    with self._lock:
                        self._events.extend(events)

    def close(self) -> tuple[int, int]:
        self._stop.set()
        self._thread.join()
        counters = self._capture.kernel_counters()
        self._capture.close()
        return counters

    def conversations(self) -> dict[int, Conversation]:
        """By client port."""
        with self._lock:
            events = list(self._events)
        by_conn: dict[int, Conversation] = {}
        for event in events:
            if isinstance(event, ConnectionOpened):
                by_conn[event.conn] = Conversation(event)
            elif isinstance(event, DataReceived):
                stream = by_conn[event.conn]
                (stream.inbound if event.direction == "in" else stream.outbound).extend(event.data)
            elif isinstance(event, Gap):
                by_conn[event.conn].gaps += 1
            elif isinstance(event, ConnectionClosed):
                by_conn[event.conn].closed = event.reason
        by_port = {c.opened.client_port: c for c in by_conn.values()}
        assert len(by_port) == len(by_conn), "two captured connections share a client port"
        return by_port

    def wait_closed(self, ports: set[int], timeout: float = 20) -> dict[int, Conversation]:
        deadline = time.monotonic() + timeout
        while True:
            conversations = self.conversations()
            if all(p in conversations and conversations[p].closed for p in ports):
                return conversations
            if time.monotonic() > deadline:
                missing = [p for p in ports if not (p in conversations and conversations[p].closed)]
                raise AssertionError(f"{len(missing)} connections never closed: {missing[:5]}")
            time.sleep(0.05)


@pytest.fixture
def tap(served: Served) -> Iterator[Tap]:
    capture = Tap(named_namespace(served.lab.name), [PORT])
    try:
        yield capture
    finally:
        _, drops = capture.close()
        assert drops == 0


def assert_every_byte_once(
    tap: Tap, served: Served, count: int, *, interface: str = "vn", reason: str = "fin"
) -> dict[int, Conversation]:
    """Every connection the server logged came out of ``tap`` whole, and nothing else."""
    log = served.wait_for_log(count)
    conversations = tap.wait_closed(set(log))
    assert set(conversations) == set(log)
    for port, (received, sent) in log.items():
        conversation = conversations[port]
        assert conversation.gaps == 0
        assert not conversation.opened.mid_stream
        assert conversation.opened.server_port == PORT
        assert conversation.opened.interface.startswith(interface)
        assert bytes(conversation.inbound) == received
        assert bytes(conversation.outbound) == sent
        assert conversation.closed == reason
    return conversations


def request(path: str, body: bytes = b"", close: bool = False) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: lab\r\nContent-Length: {len(body)}\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body


def read_response(sock: socket.socket, buffered: bytearray) -> bytes:
    """One response (Content-Length framed) from ``sock``; ``buffered`` carries leftovers."""
    while (end := buffered.find(b"\r\n\r\n")) < 0:
        buffered += sock.recv(65536)
    length = int(buffered[:end].split(b"Content-Length: ")[1].split(b"\r\n")[0])
    while len(buffered) < end + 4 + length:
        buffered += sock.recv(65536)
    response = bytes(buffered[: end + 4 + length])
    del buffered[: end + 4 + length]
    return response


# --- the scenarios --------------------------------------------------------------------------


def test_curl(served: Served, tap: Tap) -> None:
    output = subprocess.run(
        [*CURL, f"http://{served.lab.ns_ip}:{PORT}/bytes/3000"],
        capture_output=True,
        check=True,
    ).stdout
    assert output == body_of(3000)
    assert_every_byte_once(tap, served, 1)


def test_hundred_concurrent_connections(served: Served, tap: Tap) -> None:
    clients = [socket.create_connection((served.lab.ns_ip, PORT)) for _ in range(100)]
    try:
        for index, client in enumerate(clients):
            client.sendall(request(f"/bytes/{100 + index * 37}", b"q" * index))
        for index, client in enumerate(clients):
            assert read_response(client, bytearray()).endswith(body_of(100 + index * 37))
    finally:
        for client in clients:
            client.close()
    assert_every_byte_once(tap, served, 100)


def test_thousand_keep_alive_requests_on_one_connection(served: Served, tap: Tap) -> None:
    connection = http.client.HTTPConnection(served.lab.ns_ip, PORT)
    for index in range(1000):
        connection.request("GET", f"/bytes/{index % 300}", headers={"X-Index": str(index)})
        assert connection.getresponse().read() == body_of(index % 300)
    connection.close()
    conversations = assert_every_byte_once(tap, served, 1)
    (conversation,) = conversations.values()
    assert conversation.inbound.count(b"GET /bytes/") == 1000


def test_five_megabyte_upload_and_download(served: Served, tap: Tap, tmp_path: Path) -> None:
    upload = tmp_path / "upload.bin"
    upload.write_bytes(random.Random(5).randbytes(5_000_000))
    url = f"http://{served.lab.ns_ip}:{PORT}/upload"
    subprocess.run(
        [*CURL, "-o", "/dev/null", "-H", "Expect:", "--data-binary", f"@{upload}", url],
        check=True,
    )
    downloaded = subprocess.run(
        [*CURL, f"http://{served.lab.ns_ip}:{PORT}/bytes/5000000"],
        capture_output=True,
        check=True,
    ).stdout
    assert downloaded == body_of(5_000_000)
    conversations = assert_every_byte_once(tap, served, 2)
    sizes = sorted((len(c.inbound), len(c.outbound)) for c in conversations.values())
    assert sizes[0][1] > 5_000_000
    assert sizes[1][0] > 5_000_000


def test_ipv6(served: Served, tap: Tap) -> None:
    subprocess.run(
        [*CURL, "-g", "-o", "/dev/null", f"http://[{served.lab.ns_ip6}]:{PORT}/bytes/9000"],
        check=True,
    )
    conversations = assert_every_byte_once(tap, served, 1)
    (conversation,) = conversations.values()
    assert conversation.opened.client == served.lab.host_ip6


def test_loopback_inside_the_namespace(served: Served, tap: Tap) -> None:
    served.lab.run([*CURL, "-o", "/dev/null", f"http://127.0.0.1:{PORT}/bytes/20000"])
    served.lab.run([*CURL, "-o", "/dev/null", f"http://[::1]:{PORT}/bytes/700"])
    assert_every_byte_once(tap, served, 2, interface="lo")
    # Loopback shows every packet twice (outgoing, then incoming); only one copy may pass.
    assert tap.duplicates == 0


def test_connection_opened_before_capture_started(served: Served) -> None:
    client = socket.create_connection((served.lab.ns_ip, PORT))
    pending = bytearray()
    client.sendall(request("/bytes/500", b"before"))
    read_response(client, pending)
    time.sleep(0.1)  # let the last bare ACKs pass before the capture opens
    tap = Tap(named_namespace(served.lab.name), [PORT])
    try:
        late_request = request("/bytes/4000", b"after", close=True)
        client.sendall(late_request)
        late_response = read_response(client, pending)
        client.close()
        (port,) = served.wait_for_log(1)
        conversation = tap.wait_closed({port})[port]
    finally:
        tap.close()
    assert conversation.opened.mid_stream
    assert conversation.gaps == 0
    assert bytes(conversation.inbound) == late_request
    assert bytes(conversation.outbound) == late_response
    assert conversation.closed == "fin"


def test_reset_connection(served: Served, tap: Tap) -> None:
    client = socket.create_connection((served.lab.ns_ip, PORT))
    first = request("/bytes/1500", b"x" * 10)
    client.sendall(first)
    response = read_response(client, bytearray())
    partial = b"POST /bytes/9 HTTP/1.1\r\nContent-Le"
    client.sendall(partial)
    time.sleep(0.1)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # linger 0: the kernel sends RST instead of FIN
    conversations = assert_every_byte_once(tap, served, 1, reason="rst")
    (conversation,) = conversations.values()
    assert bytes(conversation.inbound) == first + partial
    assert bytes(conversation.outbound) == response


def test_pipelined_requests_in_one_send(served: Served, tap: Tap) -> None:
    client = socket.create_connection((served.lab.ns_ip, PORT))
    batch = request("/bytes/10", b"a") + request("/bytes/20000") + request("/bytes/30", close=True)
    client.sendall(batch)
    pending = bytearray()
    responses = [read_response(client, pending) for _ in range(3)]
    client.close()
    conversations = assert_every_byte_once(tap, served, 1)
    (conversation,) = conversations.values()
    assert bytes(conversation.inbound) == batch
    assert bytes(conversation.outbound) == b"".join(responses)


def test_target_given_by_pid(served: Served) -> None:
    tap = Tap(pid_namespace(served.pid), [PORT])
    try:
        subprocess.run([*CURL, "-o", "/dev/null", f"http://{served.lab.ns_ip}:{PORT}/bytes/64"])
        assert_every_byte_once(tap, served, 1)
    finally:
        assert tap.close()[1] == 0


def test_host_namespace_over_loopback(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free port, so that no one else's traffic is in the way
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path / "server.jsonl"
    log_path.touch()
    server = subprocess.Popen(
        [sys.executable, "-c", f"from {__name__} import serve; serve({port}, {str(log_path)!r})"],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    tap = Tap(host_namespace(), [port])
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == b"ready\n"
        subprocess.run([*CURL, "-o", "/dev/null", f"http://127.0.0.1:{port}/bytes/5000"])
        entries = wait_for_server_log(log_path, 1)
        ((client_port, (received, sent)),) = entries.items()
        conversation = tap.wait_closed({client_port})[client_port]
    finally:
        tap.close()
        server.kill()
        server.wait()
    assert conversation.opened.interface == "lo"
    assert bytes(conversation.inbound) == received
    assert bytes(conversation.outbound) == sent
    assert tap.duplicates == 0
