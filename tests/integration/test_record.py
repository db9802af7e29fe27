"""``podtap record`` end to end: a real HTTP server in a network namespace, curl from the host,
podtap recording to .jsonl, .har and .pcap, and each file checked by an outside reader: the HAR
against the HAR 1.2 schema, the pcap by tshark, the JSONL by opening it again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import jsonschema
import pytest

from agent import __version__
from agent.events import DataReceived
from tests.netlab import Lab
from tui.model.store import Store
from tui.output.jsonl import decode_header, decode_line
from tui.sources.local import LocalSession
from tui.sources.recording import RecordingSession
from tui.targets import LocalTarget, parse_target

pytestmark = [pytest.mark.root, pytest.mark.timeout(90)]

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "tests" / "unit" / "har-1.2.schema.json").read_text())
PORT = 8080

# Keep-alive HTTP/1.1 server: JSON answers, 404 and 500 by path, POST echoed with 201, and a
# Set-Cookie on every answer (a secret the HAR must mask).
SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", "session=s3cr3t; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/missing"):
            self.answer(404, b'{"error": "missing"}')
        elif self.path.startswith("/boom"):
            self.answer(500, b'{"error": "boom"}')
        else:
            self.answer(200, json.dumps({"path": self.path}).encode())

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer(201, body, self.headers.get("Content-Type", "application/octet-stream"))

ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"""

BINARY = bytes(range(256))


@contextlib.contextmanager
def serving(lab: Lab) -> Iterator[None]:
    server = lab.popen([sys.executable, "-c", SERVER, lab.ns_ip, str(PORT)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((lab.ns_ip, PORT), timeout=1):
                    break
            except OSError:
                assert server.poll() is None, "the test server died"
                assert time.monotonic() < deadline, "the test server did not listen"
                time.sleep(0.05)
        yield
    finally:
        server.kill()
        server.wait()


class Recorder:
    """A running ``podtap record`` whose stderr is followed line by line."""

    def __init__(self, process: asyncio.subprocess.Process, output: Path) -> None:
        self.process = process
        self.output = output
        self.stderr_lines: list[str] = []
        self._stderr_task = asyncio.create_task(self._follow_stderr())

    async def _follow_stderr(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.stderr_lines.append(raw.decode().rstrip("\n"))

    async def wait_for_stderr(self, text: str, within: float = 30) -> None:
        async with asyncio.timeout(within):
            while not any(text in line for line in self.stderr_lines):
                if self.process.returncode is not None and self._stderr_task.done():
                    raise AssertionError(f"record exited; stderr: {self.stderr_lines}")
                await asyncio.sleep(0.05)

    async def finished(self, within: float = 20) -> int:
        async with asyncio.timeout(within):
            await self.process.wait()
            await self._stderr_task
        assert self.process.returncode is not None
        assert not any("Traceback" in line for line in self.stderr_lines), self.stderr_lines
        return self.process.returncode

    async def stop(self, signum: int = signal.SIGINT) -> int:
        self.process.send_signal(signum)
        return await self.finished()


@contextlib.asynccontextmanager
async def recording(lab: Lab, output: Path, *extra: str) -> AsyncIterator[Recorder]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui",
        "record",
        f"netns/{lab.name}",
        "-p",
        str(PORT),
        "-o",
        str(output),
        *extra,
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    recorder = Recorder(process, output)
    try:
        yield recorder
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def curl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        "-H",
        "User-Agent: podtap-test",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await process.wait() == 0, f"curl {args} failed"


def url(lab: Lab, path: str) -> str:
    return f"http://{lab.ns_ip}:{PORT}{path}"


# (method, path, status) of every request the traffic below sends, in order.
EXPECTED = [
    ("GET", "/items?user=alice&page=2", 200),
    ("GET", "/a", 200),
    ("GET", "/missing", 404),
    ("POST", "/orders", 201),
    ("POST", "/upload", 201),
    ("GET", "/boom", 500),
    ("GET", "/old", 200),
]


async def traffic(lab: Lab, upload: Path) -> None:
    await curl(
        url(lab, "/items?user=alice&page=2"),
        "-H",
        "Authorization: Bearer sekret",
        "-H",
        "Cookie: sid=abc; theme=dark",
    )
    await curl(url(lab, "/a"), url(lab, "/missing"))  # one keep-alive connection, two requests
    await curl(
        url(lab, "/orders"),
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        '{"item": "book", "quantity": 2}',
    )
    await curl(
        url(lab, "/upload"),
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        f"@{upload}",
    )
    await curl(url(lab, "/boom"))
    await curl("-0", url(lab, "/old"))  # HTTP/1.0


def tshark(path: Path, *args: str) -> list[str]:
    done = subprocess.run(
        ["tshark", "-r", str(path), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def tshark_requests(path: Path) -> Counter[tuple[str, str]]:
    lines = tshark(
        path,
        "-Y",
        "http.request",
        "-T",
        "fields",
        "-e",
        "http.request.method",
        "-e",
        "http.request.uri",
    )
    return Counter(tuple(line.split("\t")) for line in lines)  # type: ignore[misc]


def har_of(path: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads(path.read_bytes())
    jsonschema.validate(document, SCHEMA)
    return document


def store_summary(store: Store) -> list[tuple[object, ...]]:
    """What a store holds, without what differs between two agents (ids, capture times)."""
    rows: list[tuple[object, ...]] = []
    for conn in store.connections.values():
        exchanges = tuple(
            (
                ex.request.method,
                ex.request.target,
                tuple(ex.request.headers),
                ex.request.body,
                ex.status,
                tuple(ex.response.headers) if ex.response else (),
                ex.response.body if ex.response else b"",
                ex.incomplete,
            )
            for ex in conn.exchanges
        )
        rows.append(
            (
                conn.client,
                conn.client_port,
                conn.server,
                conn.server_port,
                conn.protocol,
                conn.state,
                conn.bytes_in,
                conn.bytes_out,
                exchanges,
            )
        )
    return sorted(rows, key=repr)


async def live_store(lab: Lab, ready: asyncio.Event, stop: asyncio.Event) -> Store:
    """The store of a live session on the lab, fed until ``stop``."""
    target = parse_target(f"netns/{lab.name}")
    assert isinstance(target, LocalTarget)
    store = Store()
    async with LocalSession(target, [PORT]) as session:
        updates = session.updates().__aiter__()
        while not stop.is_set():
            next_batch = asyncio.ensure_future(updates.__anext__())
            stopping = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait(
                {next_batch, stopping}, return_when=asyncio.FIRST_COMPLETED
            )
            if next_batch in done:
                batch = next_batch.result()
                store.apply(batch)
                if any(getattr(u, "state", "") == "live" for u in batch):
                    ready.set()
            else:
                next_batch.cancel()
            stopping.cancel()
    return store


async def test_a_live_capture_recorded_to_all_three_formats(lab: Lab, tmp_path: Path) -> None:
    upload = tmp_path / "upload.bin"
    upload.write_bytes(BINARY)
    paths = [tmp_path / f"capture.{suffix}" for suffix in ("jsonl", "har", "pcap")]
    with serving(lab):
        live_ready, live_stop = asyncio.Event(), asyncio.Event()
        live = asyncio.create_task(live_store(lab, live_ready, live_stop))
        async with contextlib.AsyncExitStack() as stack:
            recorders = [await stack.enter_async_context(recording(lab, path)) for path in paths]
            for recorder in recorders:
                await recorder.wait_for_stderr("Listening for traffic")
            await asyncio.wait_for(live_ready.wait(), 30)
            await asyncio.sleep(0.3)  # the live session's agent is capturing too
            await traffic(lab, upload)
            await asyncio.sleep(1.5)  # every close reaches every agent
            statuses = await asyncio.gather(*(r.stop(signal.SIGINT) for r in recorders))
            live_stop.set()
            store = await live
    assert statuses == [0, 0, 0]
    for recorder in recorders:
        summary = recorder.stderr_lines[-1]
        assert summary.startswith(f"podtap: wrote {recorder.output} ("), summary
        # Only a HAR decodes HTTP (without --count): the others count what they write.
        if recorder.output.suffix == ".har":
            assert "7 exchanges, 6 connections" in summary, summary
        else:
            assert re.search(r": [\d,]+ events?, 6 connections, ", summary), summary

    jsonl, har, pcap = paths
    # JSONL: the header, then events that give the live session's store again.
    lines = jsonl.read_bytes().splitlines()
    header = decode_header(lines[0])
    assert header is not None
    assert (header.podtap, header.target, header.ports) == (
        __version__,
        f"netns/{lab.name}",
        [PORT],
    )
    assert all(decode_line(line)[0] == "local" for line in lines[1:])
    reopened = Store()
    async for batch in RecordingSession(jsonl).updates():
        reopened.apply(batch)
    assert store_summary(reopened) == store_summary(store)
    assert len(store_summary(store)) == 6

    # HAR: valid HAR 1.2, one entry per exchange, with what the issue lists.
    document = har_of(har)
    entries: list[dict[str, object]] = document["log"]["entries"]  # type: ignore[index]
    seen = [
        (e["request"]["method"], e["request"]["url"], e["response"]["status"])  # type: ignore[index]
        for e in entries
    ]
    assert sorted(seen) == sorted(
        (method, url(lab, path), status) for method, path, status in EXPECTED
    )
    by_path = {
        str(e["request"]["url"]).removeprefix(url(lab, "")): e  # type: ignore[index]
        for e in entries
    }
    first = by_path["/items?user=alice&page=2"]
    request = first["request"]
    assert {"name": "Authorization", "value": "Bearer ••••••"} in request["headers"]  # type: ignore[index]
    assert request["cookies"] == [
        {"name": "sid", "value": "••••••"},  # type: ignore[index]
        {"name": "theme", "value": "••••••"},
    ]
    assert request["queryString"] == [
        {"name": "user", "value": "alice"},  # type: ignore[index]
        {"name": "page", "value": "2"},
    ]
    assert request["httpVersion"] == "HTTP/1.1"  # type: ignore[index]
    assert first["response"]["content"]["text"] == json.dumps(  # type: ignore[index]
        {"path": "/items?user=alice&page=2"}
    )
    assert first["response"]["cookies"] == [{"name": "session", "value": "••••••"}]  # type: ignore[index]
    assert first["serverIPAddress"] == lab.ns_ip
    assert first["_pod"] == "local"
    assert all(isinstance(e["timings"]["wait"], float | int) for e in entries)  # type: ignore[index]
    assert by_path["/a"]["connection"] == by_path["/missing"]["connection"]
    assert by_path["/a"]["connection"] != first["connection"]
    assert by_path["/orders"]["request"]["postData"] == {  # type: ignore[index]
        "mimeType": "application/json",
        "text": '{"item": "book", "quantity": 2}',
    }
    upload_post = by_path["/upload"]["request"]["postData"]  # type: ignore[index]
    assert upload_post["encoding"] == "base64"
    assert upload_post["text"] == __import__("base64").b64encode(BINARY).decode()
    assert by_path["/old"]["request"]["httpVersion"] == "HTTP/1.0"  # type: ignore[index]
    assert not any(e.get("_incomplete") for e in entries)

    # pcap: tshark follows every stream and finds every request and response.
    assert tshark_requests(pcap) == Counter((method, path) for method, path, _ in EXPECTED)
    codes = tshark(pcap, "-Y", "http.response", "-T", "fields", "-e", "http.response.code")
    assert Counter(map(int, codes)) == Counter(status for _, _, status in EXPECTED)
    assert not tshark(pcap, "-Y", "tcp.analysis.flags && !tcp.analysis.window_update")


async def keep_requesting(lab: Lab, sent: list[str], until: asyncio.Event) -> None:
    while not until.is_set():
        sent.append(f"/n/{len(sent)}")
        await curl(url(lab, sent[-1]))


async def test_count_stops_after_that_many_exchanges(lab: Lab, tmp_path: Path) -> None:
    output = tmp_path / "three.har"
    sent: list[str] = []
    with serving(lab):
        async with recording(lab, output, "--count", "3") as recorder:
            await recorder.wait_for_stderr("Listening for traffic")
            done = asyncio.Event()
            requests = asyncio.create_task(keep_requesting(lab, sent, done))
            status = await recorder.finished(within=30)
            done.set()
            await requests
    assert status == 0
    entries = har_of(output)["log"]["entries"]  # type: ignore[index]
    assert 3 <= len(entries) < len(sent) + 1
    answered = [e for e in entries if e["response"]["status"] == 200]
    assert len(answered) >= 3


# The progress line and the summary of a recording that does not decode HTTP.
RAW_PROGRESS = re.compile(
    r"^\* recording to (?P<path>\S+): (?P<events>[\d,]+) events?, (?P<connections>\d+) "
    r"connections?, [\d.]+ k?B in [\d.]+ s$"
)
RAW_SUMMARY = re.compile(
    r"^podtap: wrote (?P<path>\S+) \([\d.]+ k?B\): (?P<events>[\d,]+) events?, "
    r"(?P<connections>\d+) connections?, [\d.]+ k?B in [\d.]+ s; (?P<losses>.+)$"
)


async def test_a_jsonl_recording_writes_every_event_and_says_how_many(
    lab: Lab, tmp_path: Path
) -> None:
    """Without --count a JSONL recording decodes no HTTP: its lines say events and
    connections, and the file holds every event the agent journaled, none missing."""
    output = tmp_path / "raw.jsonl"
    with serving(lab):
        async with recording(lab, output) as recorder:
            await recorder.wait_for_stderr("Listening for traffic")
            await curl(*(url(lab, f"/k/{n}") for n in range(20)))  # one connection, 20 requests
            for n in range(3):
                await curl(url(lab, f"/single/{n}"))
            await asyncio.sleep(1.5)  # every close reaches the agent
            status = await recorder.stop(signal.SIGINT)
    assert status == 0
    lines = output.read_bytes().splitlines()
    assert decode_header(lines[0]) is not None
    events = [decode_line(line)[1] for line in lines[1:]]
    journaled = [event.seq for event in events if event.seq]
    assert journaled == list(range(journaled[0], journaled[0] + len(journaled)))  # no hole
    kinds = Counter(type(event).__name__ for event in events)
    assert kinds["ConnectionOpened"] == kinds["ConnectionClosed"] == 4
    requests = b"".join(
        e.data for e in events if isinstance(e, DataReceived) and e.direction == "in"
    )
    assert requests.count(b"GET /") == 23

    progress = [m for line in recorder.stderr_lines if (m := RAW_PROGRESS.match(line))]
    assert progress, recorder.stderr_lines  # one at the start: stderr is not a terminal
    assert all(m["path"] == str(output) for m in progress)
    summary = RAW_SUMMARY.match(recorder.stderr_lines[-1])
    assert summary is not None, recorder.stderr_lines[-1]
    assert summary["path"] == str(output)
    assert int(summary["events"].replace(",", "")) == len(events)
    assert (summary["connections"], summary["losses"]) == ("4", "nothing lost")
    assert not any("exchanges" in line for line in recorder.stderr_lines)


async def test_count_decodes_a_jsonl_recording_to_stop_on_exchanges(
    lab: Lab, tmp_path: Path
) -> None:
    output = tmp_path / "five.jsonl"
    sent: list[str] = []
    with serving(lab):
        async with recording(lab, output, "--count", "5") as recorder:
            await recorder.wait_for_stderr("Listening for traffic")
            done = asyncio.Event()
            requests = asyncio.create_task(keep_requesting(lab, sent, done))
            status = await recorder.finished(within=30)
            done.set()
            await requests
    assert status == 0
    summary = recorder.stderr_lines[-1]
    assert summary.startswith(f"podtap: wrote {output} ("), summary
    found = re.search(r": (\d+) exchanges?, (\d+) connections?, ", summary)
    assert found is not None, summary
    assert int(found[1]) >= 5  # stopped on the fifth (a batch may bring one more)
    assert int(found[1]) < len(sent) + 1
    reopened = Store()
    async for batch in RecordingSession(output).updates():
        reopened.apply(batch)
    answered = [
        exchange
        for connection in reopened.connections.values()
        for exchange in connection.exchanges
        if exchange.status == 200
    ]
    assert len(answered) >= 5


async def test_duration_stops_after_that_many_seconds(lab: Lab, tmp_path: Path) -> None:
    output = tmp_path / "two-seconds.pcap"
    sent: list[str] = []
    with serving(lab):
        async with recording(lab, output, "--duration", "2") as recorder:
            await recorder.wait_for_stderr("Listening for traffic")
            began = time.monotonic()
            done = asyncio.Event()
            requests = asyncio.create_task(keep_requesting(lab, sent, done))
            status = await recorder.finished(within=30)
            took = time.monotonic() - began
            done.set()
            await requests
    assert status == 0
    assert 1.5 < took < 10
    found = tshark_requests(output)
    assert found, "nothing recorded"
    assert set(found) <= {("GET", path) for path in sent}


@pytest.mark.parametrize("suffix", ["jsonl", "har", "pcap"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_mid_recording_leaves_a_valid_file(
    lab: Lab, tmp_path: Path, suffix: str, signum: int
) -> None:
    output = tmp_path / f"cut.{suffix}"
    sent: list[str] = []
    with serving(lab):
        async with recording(lab, output) as recorder:
            await recorder.wait_for_stderr("Listening for traffic")
            done = asyncio.Event()
            requests = asyncio.create_task(keep_requesting(lab, sent, done))
            await asyncio.sleep(1.5)
            status = await recorder.stop(signum)
            done.set()
            await requests
            agents = list(_agent_pids(lab))
    assert status == 0
    assert agents == [], "the agent outlived podtap record"
    assert len(sent) >= 3
    if suffix == "har":
        entries = har_of(output)["log"]["entries"]  # type: ignore[index]
        assert len(entries) >= 2
    elif suffix == "pcap":
        assert len(tshark_requests(output)) >= 2
    else:
        lines = output.read_bytes().splitlines()
        assert decode_header(lines[0]) is not None
        events = [decode_line(line)[1] for line in lines[1:]]
        assert sum(1 for e in events if type(e).__name__ == "ConnectionOpened") >= 2


async def test_a_crash_leaves_what_was_flushed(lab: Lab, tmp_path: Path) -> None:
    """SIGKILL gives podtap no chance to finish: the file holds what the last flush wrote."""
    output = tmp_path / "crash.har"
    with serving(lab):
        async with recording(lab, output) as recorder:
            await recorder.wait_for_stderr("Listening for traffic")
            await curl(url(lab, "/before-the-crash"))
            await asyncio.sleep(1.5)
            recorder.process.kill()
            await recorder.process.wait()
            for pid in _agent_pids(lab):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    entries = har_of(output)["log"]["entries"]  # type: ignore[index]
    assert [e["request"]["url"] for e in entries] == [url(lab, "/before-the-crash")]


def _agent_pids(lab: Lab) -> Sequence[int]:
    """Agent processes on this lab's namespace (their argv names it)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = cmdline.read_bytes().split(b"\0")
            if b"agent" in argv and lab.name.encode() in argv:
                found.append(int(cmdline.parent.name))
    return found


async def test_a_target_that_does_not_exist_is_one_sentence_and_no_file(tmp_path: Path) -> None:
    output = tmp_path / "never.har"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui",
        "record",
        f"netns/podtap-missing-{os.getpid()}",
        "-p",
        "80",
        "-o",
        str(output),
        cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    lines = stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("podtap: Network namespace")
    assert not output.exists()


async def test_a_wrong_extension_is_said_before_anything_starts(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui",
        "record",
        "host",
        "-p",
        "80",
        "-o",
        str(tmp_path / "x.txt"),
        cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert (process.returncode, stderr.decode()) == (
        1,
        f"podtap: {tmp_path / 'x.txt'}: the file name must end in .jsonl, .har or .pcap "
        "(the format follows it).\n",
    )
