"""``podtap dump`` end to end: a real server in a network namespace, curl from the host, the
real agent started by podtap, and podtap's stdout/stderr/exit status checked."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent import __version__
from agent.events import DataReceived, Hello
from tests.netlab import Lab
from tui.output.jsonl import RecordingHeader, decode_header, decode_line

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[2]
PORT = 8080
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"
    b"Connection: close\r\n\r\nhello\n"
)

# One request per connection, answered with RESPONSE in one write, then closed: every run
# produces the same bytes, so podtap's output can be compared line by line.
SERVER = f"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
server = socket.socket(family)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], {PORT}))
server.listen(128)
def answer(conn):
    request = b""
    while b"\\r\\n\\r\\n" not in request:
        chunk = conn.recv(65536)
        if not chunk:
            return  # a readiness probe: nothing to answer
        request += chunk
    conn.sendall({RESPONSE!r})
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(65536):
        pass
while True:
    conn, _ = server.accept()
    try:
        answer(conn)
    except OSError:
        pass
    conn.close()
"""


@dataclass
class Served:
    lab: Lab
    address: str


@contextlib.contextmanager
def serving(lab: Lab, address: str) -> Iterator[Served]:
    server = lab.popen([sys.executable, "-c", SERVER, address])
    try:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.socket(family) as probe:
                    probe.connect((address, PORT))
                break
            except OSError:
                assert server.poll() is None, "the test server died"
                assert time.monotonic() < deadline, "the test server did not listen"
                time.sleep(0.05)
        yield Served(lab, address)
    finally:
        server.kill()
        server.wait()


class Dump:
    """A running ``podtap dump`` whose stderr is followed line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr_lines: list[str] = []
        self.stdout = bytearray()
        self._stderr_task = asyncio.create_task(self._follow_stderr())
        self._stdout_task = asyncio.create_task(self._follow_stdout())
        self._line_seen = asyncio.Event()

    async def _follow_stdout(self) -> None:
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(65536):
            self.stdout += chunk

    async def _follow_stderr(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.stderr_lines.append(raw.decode().rstrip("\n"))
            self._line_seen.set()

    async def wait_for_stderr(self, text: str, within: float = 20) -> str:
        async with asyncio.timeout(within):
            while True:
                for line in self.stderr_lines:
                    if text in line:
                        return line
                if self.process.returncode is not None and self._stderr_task.done():
                    raise AssertionError(f"dump exited; stderr: {self.stderr_lines}")
                self._line_seen.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._line_seen.wait(), 0.2)

    async def wait_for_stdout(self, done: Callable[[bytes], bool], within: float = 15) -> None:
        """Wait until what dump printed satisfies ``done`` (capture, agent and client take
        their time on a loaded machine: no fixed sleep is long enough)."""
        async with asyncio.timeout(within):
            while not done(bytes(self.stdout)):
                assert self.process.returncode is None, f"dump exited: {self.stderr_lines}"
                await asyncio.sleep(0.05)

    def agent_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with contextlib.suppress(OSError):
            return [int(pid) for pid in children.read_text().split()]
        return []

    async def stop(self, signum: int = signal.SIGTERM) -> tuple[int, bytes]:
        self.process.send_signal(signum)
        async with asyncio.timeout(15):
            await self.process.wait()
            await self._stderr_task
            await self._stdout_task
        assert self.process.returncode is not None
        return self.process.returncode, bytes(self.stdout)


@contextlib.asynccontextmanager
async def running_dump(*args: str) -> AsyncIterator[Dump]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui",
        "dump",
        *args,
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    dump = Dump(process)
    try:
        yield dump
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for pid in dump.agent_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def curl(url: str, *extra: str) -> bytes:
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--max-time",
        "10",
        "-H",
        "User-Agent: podtap-test",
        *extra,
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, f"curl {url} failed"
    return out


def url(address: str, path: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{PORT}{path}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


def connection_id(text: str) -> int:
    """The id of the first connection in a dump (ids are the agent's: not always from 0)."""
    found = re.search(r"Connection ID (\d+)", text) or re.search(r"Request \[(\d+):", text)
    assert found, f"no connection in {text!r}"
    return int(found[1])


def expected_exchange(
    conn: int, client: str, client_port: int, server: str, path: str
) -> list[str]:
    def at(host: str, port: int) -> str:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    host_header = f"[{server}]:{PORT}" if ":" in server else f"{server}:{PORT}"
    request = f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: */*\r\n"
    request += "User-Agent: podtap-test\r\n\r\n"
    return [
        f"## New connection established: Connection ID {conn} from {at(client, client_port)} "
        f"to {at(server, PORT)}",
        f"## Connection ID {conn}: {len(request)} bytes",
        f"Data: GET {path} HTTP/1.1",
        f"Host: {host_header}",
        "Accept: */*",
        "User-Agent: podtap-test",
        "",
        f"## Connection ID {conn}: {len(RESPONSE)} bytes (response)",
        "Data: HTTP/1.1 200 OK",
        "Content-Type: text/plain",
        "Content-Length: 6",
        "Connection: close",
        "",
        "hello",
        "",
        f"## Connection ID {conn} closed",
        "",
    ]


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
async def test_a_scripted_exchange_line_by_line(lab: Lab, family: str) -> None:
    server, client = (lab.ns_ip, lab.host_ip) if family == "ipv4" else (lab.ns_ip6, lab.host_ip6)
    client_port = free_port()
    with serving(lab, server):
        async with running_dump(f"netns/{lab.name}", "-p", str(PORT), "--responses") as dump:
            await dump.wait_for_stderr("Listening for traffic... Press Ctrl+C to stop")
            body = await curl(url(server, "/hello?x=1"), "--local-port", str(client_port))
            assert body == b"hello\n"
            # The close is the last thing printed for this exchange.
            await dump.wait_for_stdout(lambda out: out.endswith(b" closed\n\n"))
            status, stdout = await dump.stop(signal.SIGTERM)
    assert status == 0
    text = stdout.decode()
    assert text.splitlines() == expected_exchange(
        connection_id(text), client, client_port, server, "/hello?x=1"
    )
    assert not any("Traceback" in line for line in dump.stderr_lines)


async def test_without_responses_only_the_requests_are_printed(lab: Lab) -> None:
    with serving(lab, lab.ns_ip):
        async with running_dump(f"netns/{lab.name}", "-p", str(PORT)) as dump:
            await dump.wait_for_stderr("Listening for traffic")
            await curl(url(lab.ns_ip, "/only-requests"))
            await dump.wait_for_stdout(lambda out: out.endswith(b" closed\n\n"))
            await asyncio.sleep(0.5)  # time for a response to be printed, were it wrongly
            status, stdout = await dump.stop(signal.SIGINT)
    assert status == 0
    text = stdout.decode()
    assert "Data: GET /only-requests HTTP/1.1" in text
    assert "(response)" not in text
    assert "hello" not in text
    assert text.endswith(f"## Connection ID {connection_id(text)} closed\n\n")


async def test_cutting_the_stream_mid_capture_loses_and_repeats_nothing(lab: Lab) -> None:
    with serving(lab, lab.ns_ip):
        async with running_dump(f"netns/{lab.name}", "-p", str(PORT), "--format", "jsonl") as dump:
            await dump.wait_for_stderr("Listening for traffic")
            (agent,) = dump.agent_pids()
            agent_port = listening_port(agent)
            cutting_done = asyncio.Event()
            sent: list[str] = []

            async def traffic() -> None:
                # At least 100 requests, and traffic on the wire during every cut.
                while len(sent) < 100 or not cutting_done.is_set():
                    sent.append(f"/req/{len(sent)}")
                    await curl(url(lab.ns_ip, sent[-1]))

            driving = asyncio.create_task(traffic())
            cuts = 0
            for _ in range(3):
                await asyncio.sleep(0.4)
                # Kill podtap's end of the websocket, as a broken port-forward would.
                cuts += await cut_connections_to(agent_port)
            cutting_done.set()
            await driving
            await dump.wait_for_stdout(lambda out: out.count(b'"type":"close"') >= len(sent))
            status, stdout = await dump.stop()
    assert status == 0
    assert cuts == 3, "the websocket was not cut each time: the test proves nothing"
    assert sum("Reconnected to the agent" in line for line in dump.stderr_lines) == 3

    header, *lines = stdout.splitlines()
    assert decode_header(header) == RecordingHeader(__version__, f"netns/{lab.name}", [PORT])
    events = [decode_line(line)[1] for line in lines]
    seqs = [event.seq for event in events if event.seq]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "an event was lost or repeated"
    assert sum(isinstance(event, Hello) for event in events) == 4
    paths = Counter(
        event.data.split(b" ")[1].decode()
        for event in events
        if isinstance(event, DataReceived) and event.direction == "in"
    )
    assert paths == Counter(sent)


async def cut_connections_to(port: int) -> int:
    """Kill the TCP connections to loopback ``port`` (from the client's side); how many."""
    cut = await asyncio.create_subprocess_exec(
        "ss",
        "-K",
        "dst",
        "127.0.0.1",
        "dport",
        "=",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await cut.communicate()
    return out.decode().count("ESTAB")


def process_exists(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting to be reaped has finished running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def listening_port(pid: int) -> int:
    listing = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        if f"pid={pid}," in line:
            return int(line.split()[3].rsplit(":", 1)[1])
    raise AssertionError(f"agent {pid} listens nowhere: {listing}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_ends_dump_and_its_agent(lab: Lab, signum: int) -> None:
    async with running_dump(f"netns/{lab.name}", "-p", str(PORT)) as dump:
        await dump.wait_for_stderr("Listening for traffic")
        agents = dump.agent_pids()
        assert len(agents) == 1
        started = time.monotonic()
        status, stdout = await dump.stop(signum)
        assert time.monotonic() - started < 10
    assert status == 0
    assert stdout == b""
    assert not process_exists(agents[0]), "the agent outlived podtap dump"
    assert agents_for(lab) == [], "agent processes outlived podtap dump"
    assert not any("Traceback" in line for line in dump.stderr_lines)


async def test_an_agent_that_dies_is_reported_in_one_sentence(lab: Lab) -> None:
    async with running_dump(f"netns/{lab.name}", "-p", str(PORT)) as dump:
        await dump.wait_for_stderr("Listening for traffic")
        (agent,) = dump.agent_pids()
        os.kill(agent, signal.SIGKILL)
        async with asyncio.timeout(15):
            await dump.process.wait()
        await dump.wait_for_stderr("SIGKILL")
    assert dump.process.returncode == 1
    assert dump.stderr_lines[-1] == "podtap: The agent was stopped by SIGKILL."


async def test_a_target_that_does_not_exist_is_one_sentence() -> None:
    async with running_dump(f"netns/podtap-missing-{os.getpid()}", "-p", str(PORT)) as dump:
        async with asyncio.timeout(20):
            await dump.process.wait()
        await asyncio.sleep(0.1)
    assert dump.process.returncode == 1
    assert len(dump.stderr_lines) == 1, dump.stderr_lines
    assert dump.stderr_lines[0].startswith("podtap: ")
    assert "podtap agent:" not in dump.stderr_lines[0]


async def test_local_targets_need_a_port() -> None:
    async with running_dump("host") as dump:
        async with asyncio.timeout(20):
            await dump.process.wait()
        await asyncio.sleep(0.1)
    assert dump.process.returncode == 1
    assert dump.stderr_lines == [
        "podtap: Say which port host serves: add -p PORT (repeat it for more ports)."
    ]


async def test_http_mode_prints_decoded_requests_and_responses(lab: Lab) -> None:
    client_port = free_port()
    with serving(lab, lab.ns_ip):
        async with running_dump(f"netns/{lab.name}", "-p", str(PORT), "--http") as dump:
            await dump.wait_for_stderr("Listening for traffic")
            await curl(
                url(lab.ns_ip, "/users?id=7"),
                "-H",
                "X-User-Id: alice",
                "--local-port",
                str(client_port),
            )
            await dump.wait_for_stdout(lambda out: b"## Response" in out)
            status, stdout = await dump.stop()
    assert status == 0
    lines = stdout.decode().splitlines()
    response_line = lines[7]
    conn = connection_id(lines[0])
    assert re.fullmatch(rf"## Response \[{conn}:0\] 200 OK \(\d+\.\d ms\)", response_line)
    assert lines[:7] + lines[8:] == [
        f"## Request [{conn}:0] from {lab.host_ip}:{client_port} to {lab.ns_ip}:{PORT}",
        "GET /users?id=7 HTTP/1.1",
        f"Host: {lab.ns_ip}:{PORT}",
        "Accept: */*",
        "User-Agent: podtap-test",
        "X-User-Id: alice",
        "",
        "Content-Type: text/plain",
        "Content-Length: 6",
        "Connection: close",
        "",
    ]


def agents_for(lab: Lab) -> list[str]:
    """Command lines of agent processes on this lab's namespace."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = cmdline.read_bytes().split(b"\0")
            if b"agent" in argv and lab.name.encode() in argv:
                found.append(b" ".join(argv).decode())
    return found


async def test_a_signal_while_the_agent_starts_leaves_no_agent(lab: Lab) -> None:
    async with running_dump(f"netns/{lab.name}", "-p", str(PORT)) as dump:
        for _ in range(1000):
            if dump.agent_pids():
                break
            await asyncio.sleep(0.01)
        status, _ = await dump.stop(signal.SIGINT)
    assert status == 0
    assert not any("Listening" in line for line in dump.stderr_lines), "stopped too late"
    assert not any("Traceback" in line for line in dump.stderr_lines), dump.stderr_lines
    assert agents_for(lab) == []


@pytest.mark.timeout(60)
async def test_an_agent_outlives_a_killed_dump_only_by_its_idle_timeout(lab: Lab) -> None:
    async with running_dump(f"netns/{lab.name}", "-p", str(PORT)) as dump:
        await dump.wait_for_stderr("Listening for traffic")
        (agent,) = dump.agent_pids()
        dump.process.kill()
        await dump.process.wait()
        killed_at = time.monotonic()
        for _ in range(400):
            if not process_exists(agent):
                break
            await asyncio.sleep(0.1)
        assert not process_exists(agent), "the agent of a killed dump never exited"
    assert time.monotonic() - killed_at < 25
