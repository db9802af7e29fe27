"""HTTP/2 and gRPC end to end: real servers in a network namespace (nghttpd, hypercorn, a grpcio
server), real clients on the host (nghttp, curl, a grpcio client), ``podtap record`` capturing
to JSONL, and the recording opened again. What podtap decoded is compared field by field with
what the peers say they sent and received."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, struct_pb2, wrappers_pb2

from tests.grpc_peers import NOT_FOUND_MESSAGE, greeting
from tests.integration.test_record import recording
from tests.netlab import Lab
from tui.model.curl import as_curl
from tui.model.filters import parse_filter
from tui.model.flows import Connection, Exchange
from tui.model.grpc import call_message, call_status
from tui.model.http2 import JOINED_MID_STREAM
from tui.model.protobuf_raw import render
from tui.model.store import Store, StoreChange
from tui.output.exchange_text import ExchangeTextFormatter
from tui.output.har import har_entry
from tui.sources.recording import RecordingSession
from tui.views.widgets.tables import exchange_cells

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
PORT = 8080
PAGE = b"<h1>podtap</h1>\n" * 50
BIG = bytes(range(256)) * 300

# Echoes what it received (as the server saw it) in a JSON body, so the test can compare.
ASGI_APP = """
import json

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    seen = {
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode(),
        "version": scope["http_version"],
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        "body": body.decode(),
    }
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"x-served-by", b"asgi")]})
    await send({"type": "http.response.body", "body": json.dumps(seen).encode()})
"""


@contextlib.contextmanager
def serving(lab: Lab, argv: list[str], cwd: Path | None = None) -> Iterator[None]:
    server = lab.popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection((lab.ns_ip, PORT), timeout=1):
                    break
            except OSError:
                assert server.poll() is None, f"{argv[0]} died"
                assert time.monotonic() < deadline, f"{argv[0]} did not listen"
                time.sleep(0.1)
        yield
    finally:
        server.kill()
        server.wait()


async def run(*argv: str, stdin: bytes | None = None) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 30)
    assert process.returncode == 0, f"{argv} failed: {err.decode()}"
    return out


async def captured(lab: Lab, tmp_path: Path, *clients: tuple[str, ...]) -> Store:
    """Runs the clients one after the other under ``podtap record``; the reopened store."""
    output = tmp_path / "capture.jsonl"
    async with recording(lab, output) as recorder:
        await recorder.wait_for_stderr("Listening for traffic")
        await asyncio.sleep(0.3)
        for argv in clients:
            await run(*argv)
        await asyncio.sleep(1.5)  # every close reaches the agent
        assert await recorder.stop(signal.SIGINT) == 0
    return await reopened(output)


async def reopened(path: Path) -> Store:
    store = Store()
    async for batch in RecordingSession(path).updates():
        store.apply(batch)
    return store


def exchanges_of(store: Store, protocol: str) -> list[tuple[Connection, Exchange]]:
    return [
        (conn, ex)
        for conn in store.connections.values()
        if conn.protocol == protocol
        for ex in conn.exchanges
    ]


def dump_text(store: Store) -> str:
    formatter = ExchangeTextFormatter(reveal=True)
    change = StoreChange()
    for conn in store.connections.values():
        change.new_exchanges += conn.exchanges
    return formatter.format_change(change, store.get)


async def test_nghttp_concurrent_streams_against_nghttpd(lab: Lab, tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    (root / "page.html").write_bytes(PAGE)
    (root / "big.bin").write_bytes(BIG)
    (root / "form.txt").write_text("kind=tap&who=podtap\n")
    base = f"http://{lab.ns_ip}:{PORT}"
    with serving(lab, ["nghttpd", "--no-tls", "-a", lab.ns_ip, "-d", str(root), str(PORT)]):
        store = await captured(
            lab,
            tmp_path,
            (
                "nghttp",
                "-n",
                "-H",
                "x-user-id: alice",
                f"{base}/page.html",
                f"{base}/big.bin",
                f"{base}/missing",
            ),
            ("nghttp", "-n", "-d", str(root / "form.txt"), f"{base}/page.html?via=post"),
        )
    seen = exchanges_of(store, "h2")
    by_target = {ex.request.target: ex for _, ex in seen}
    assert sorted(by_target) == ["/big.bin", "/missing", "/page.html", "/page.html?via=post"]
    page = by_target["/page.html"]
    assert (page.request.method, page.request.http_version) == ("GET", "2")
    assert page.request.host == f"{lab.ns_ip}:{PORT}"
    assert page.request.header("x-user-id") == "alice"
    assert page.response is not None
    assert (page.status, page.response.body, page.response.complete) == (200, PAGE, True)
    assert page.response.header("content-length") == str(len(PAGE))
    big = by_target["/big.bin"]
    assert big.response is not None
    assert big.response.body_length == len(BIG)
    assert big.response.body == BIG[: len(big.response.body)]
    assert by_target["/missing"].status == 404
    post = by_target["/page.html?via=post"]
    assert (post.request.method, post.request.body) == ("POST", b"kind=tap&who=podtap\n")
    # The three GETs shared one connection, on distinct odd streams.
    streams = [by_target[t].stream_id for t in ("/page.html", "/big.bin", "/missing")]
    assert len({by_target[t].key for t in ("/page.html", "/big.bin", "/missing")}) == 1
    assert all(s is not None and s % 2 == 1 for s in streams)
    assert len(set(streams)) == 3
    assert all(not ex.incomplete and ex.error is None for _, ex in seen)

    text = dump_text(store)
    assert "GET /page.html HTTP/2\n" in text
    assert f"stream {page.stream_id} from" in text
    conn = store.get(page.key)
    assert conn is not None
    entry = har_entry(page, conn)
    assert entry["request"]["httpVersion"] == "HTTP/2"
    assert entry["response"]["httpVersion"] == "HTTP/2"
    assert as_curl(page, conn).startswith("curl --http2-prior-knowledge ")


async def test_curl_prior_knowledge_and_h2c_upgrade_against_hypercorn(
    lab: Lab, tmp_path: Path
) -> None:
    (tmp_path / "echo_app.py").write_text(ASGI_APP)
    base = f"http://{lab.ns_ip}:{PORT}"
    argv = [sys.executable, "-m", "hypercorn", "--bind", f"{lab.ns_ip}:{PORT}", "echo_app:app"]
    prior_headers, upgrade_headers = tmp_path / "prior.txt", tmp_path / "upgrade.txt"
    with serving(lab, argv, cwd=tmp_path):
        prior_out = tmp_path / "prior.json"
        upgrade_out = tmp_path / "upgrade.json"
        store = await captured(
            lab,
            tmp_path,
            (
                "curl",
                "-sS",
                "--http2-prior-knowledge",
                "-D",
                str(prior_headers),
                "-o",
                str(prior_out),
                "-H",
                "x-user-id: bob",
                "-d",
                "a=1&b=2",
                f"{base}/submit?x=1",
            ),
            (
                "curl",
                "-sS",
                "--http2",
                "-D",
                str(upgrade_headers),
                "-o",
                str(upgrade_out),
                f"{base}/upgraded",
            ),
        )
    prior_seen = json.loads(prior_out.read_text())
    upgrade_seen = json.loads(upgrade_out.read_text())
    assert prior_seen["version"] == "2"
    assert upgrade_seen["version"] == "2"

    (prior,) = [ex for _, ex in exchanges_of(store, "h2") if ex.request.path == "/submit"]
    assert (prior.request.method, prior.request.target) == ("POST", "/submit?x=1")
    assert prior.stream_id == 1
    # Every header the server received, as podtap saw it on the wire (pseudo-headers apart).
    assert [list(h) for h in prior.request.headers] == [
        [name, value] for name, value in prior_seen["headers"] if name != "host"
    ]
    assert prior.request.body.decode() == prior_seen["body"] == "a=1&b=2"
    assert prior.response is not None
    assert prior.response.body == prior_out.read_bytes()
    assert prior.status == 201
    assert _curl_headers(prior_headers) == [(n, v) for n, v in prior.response.headers]

    (upgraded,) = [ex for _, ex in exchanges_of(store, "h2") if ex.request.path == "/upgraded"]
    # curl asked in HTTP/1.1, the server switched (101), then answered on stream 1.
    assert upgraded.request.http_version == "1.1"
    assert [r.status for r in upgraded.informational] == [101]
    assert upgraded.stream_id == 1
    assert upgraded.response is not None
    assert (upgraded.status, upgraded.response.http_version) == (201, "2")
    assert upgraded.response.body == upgrade_out.read_bytes()
    assert _curl_headers(upgrade_headers)[-len(upgraded.response.headers) :] == [
        (n, v) for n, v in upgraded.response.headers
    ]


def _curl_headers(path: Path) -> list[tuple[str, str]]:
    """The last response's header lines from curl's -D file."""
    blocks = path.read_text().replace("\r\n", "\n").strip().split("\n\n")
    lines = blocks[-1].splitlines()[1:]
    return [(n.strip().lower(), v.strip()) for n, v in (line.split(":", 1) for line in lines)]


def _grpc_server(lab: Lab) -> list[str]:
    return [sys.executable, "-m", "tests.grpc_peers", "serve", str(PORT), lab.ns_ip]


async def test_grpc_calls_of_every_kind_and_gzip(lab: Lab, tmp_path: Path) -> None:
    address = f"{lab.ns_ip}:{PORT}"
    python = sys.executable
    with serving(lab, _grpc_server(lab), cwd=REPO):
        store = await captured(
            lab,
            tmp_path,
            (python, "-m", "tests.grpc_peers", "call", address),
            (python, "-m", "tests.grpc_peers", "gzip", address, "zipped " * 30),
        )
    calls = {ex.request.path: ex for _, ex in exchanges_of(store, "grpc") if not ex.notes}
    assert set(calls) == {
        "/podtap.demo.Greeter/SayHello",
        "/podtap.demo.Greeter/Count",
        "/podtap.demo.Greeter/Sum",
        "/podtap.demo.Greeter/Chat",
    }
    said = [ex for _, ex in exchanges_of(store, "grpc") if ex.request.path.endswith("/SayHello")]
    unary, failed, zipped = said

    def sent(ex: Exchange, direction: str) -> list[str]:
        return [render(m.data) for m in ex.messages if m.direction == direction]

    def proto(*messages: object) -> list[str]:
        return [render(m.SerializeToString()) for m in messages]  # type: ignore[attr-defined]

    string = wrappers_pb2.StringValue
    assert sent(unary, "in") == proto(string(value="alice"))
    # A map's order on the wire is the sender's choice: compare the message, not its bytes.
    (reply,) = [m.data for m in unary.messages if m.direction == "out"]
    assert struct_pb2.Struct.FromString(reply) == greeting("alice")
    assert call_status(unary) == ("0", "OK")
    count = calls["/podtap.demo.Greeter/Count"]
    numbers = [wrappers_pb2.Int64Value(value=n) for n in (1000, 2000, 3000)]
    assert sent(count, "out") == proto(*numbers)
    total = calls["/podtap.demo.Greeter/Sum"]
    words = [string(value=w) for w in ("one", "three", "fifteen")]
    assert sent(total, "in") == proto(*words)
    location = descriptor_pb2.SourceCodeInfo.Location(path=[3, 5, 7], span=[15])
    assert sent(total, "out") == proto(location) == ["1: [3, 5, 7]\n2: [15]"]
    chat = calls["/podtap.demo.Greeter/Chat"]
    assert sent(chat, "out") == proto(*(string(value=w.value.upper()) for w in words))
    assert call_status(failed) == ("5", "NOT_FOUND")
    assert call_message(failed) == NOT_FOUND_MESSAGE
    assert failed.response is not None
    assert failed.response.reason == "NOT_FOUND"
    assert zipped.request.header("grpc-encoding") == "gzip"
    (message,) = [m for m in zipped.messages if m.direction == "in"]
    assert message.note.startswith("compressed (gzip")
    assert render(message.data) == proto(string(value="zipped " * 30))[0]
    (reply,) = [m.data for m in zipped.messages if m.direction == "out"]
    assert struct_pb2.Struct.FromString(reply) == greeting("zipped " * 30)
    assert all(ex.messages and not ex.incomplete for _, ex in exchanges_of(store, "grpc"))
    # HAR keeps each message twice: as protoc --decode_raw reads it, and its bytes, which the
    # schema parses back to what the client and server sent.
    conn = next(c for c, ex in exchanges_of(store, "grpc") if ex is count)
    replies = [m for m in har_entry(count, conn)["_grpcMessages"] if m["type"] == "receive"]
    assert [m["data"] for m in replies] == proto(*numbers)
    assert [wrappers_pb2.Int64Value.FromString(base64.b64decode(m["raw"])) for m in replies] == (
        numbers
    )
    # ~b finds a word inside the gzip-compressed message, and the status column says NOT_FOUND.
    zipped_conn = next(c for c, ex in exchanges_of(store, "grpc") if ex is zipped)
    assert parse_filter('~b "zipped zipped"').evaluate(zipped_conn, zipped)
    assert not parse_filter('~b "zipped zipped"').evaluate(conn, count)
    assert exchange_cells(failed)[3] == ("NOT_FOUND", "bold red")


async def test_an_http2_connection_joined_mid_stream(lab: Lab, tmp_path: Path) -> None:
    """Calls before the capture starts are not seen; later ones are, marked where the header
    table entries they refer to were sent before the capture: nothing invented."""
    address = f"{lab.ns_ip}:{PORT}"
    output = tmp_path / "late.jsonl"
    with serving(lab, _grpc_server(lab), cwd=REPO):
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.grpc_peers",
            "session",
            address,
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert client.stdin is not None
        assert client.stdout is not None

        async def call(name: str) -> None:
            client.stdin.write(f"{name}\n".encode())  # type: ignore[union-attr]
            await client.stdin.drain()  # type: ignore[union-attr]
            answer = await asyncio.wait_for(client.stdout.readline(), 20)  # type: ignore[union-attr]
            assert json.loads(answer)["greeting"] == f"hello {name}"

        try:
            for name in ("before-1", "before-2", "before-3"):
                await call(name)
            async with recording(lab, output) as recorder:
                await recorder.wait_for_stderr("Listening for traffic")
                await asyncio.sleep(0.5)
                for name in ("after-1", "after-2", "after-3"):
                    await call(name)
                await asyncio.sleep(1.0)
                assert await recorder.stop(signal.SIGINT) == 0
        finally:
            client.stdin.close()
            await asyncio.wait_for(client.wait(), 20)
    store = await reopened(output)
    (conn,) = store.connections.values()
    assert conn.mid_stream
    assert conn.protocol == "grpc"
    names = []
    for ex in conn.exchanges:
        assert ex.stream_id is not None
        assert ex.stream_id > 5  # the three calls before the capture are not invented
        assert ex.request.path in ("", "/podtap.demo.Greeter/SayHello")
        if ex.request.path == "":
            assert JOINED_MID_STREAM in ex.notes
        names.append(render(ex.messages[0].data))
    assert names == [f'1: "after-{n}"' for n in (1, 2, 3)]
