"""Real clients and a real server on loopback, the bytes between them decoded by the store.

A small relay stands where the agent would: it forwards each chunk as it arrives and records it
(with its direction) in arrival order, so the store sees what a capture would show.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.events import ConnectionClosed, ConnectionOpened, DataReceived
from tui.model.filters import parse_filter
from tui.model.store import Store
from tui.model.updates import AgentEvent, Update


class _Shop(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"first ", b"second ", b"third"):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/gone":
            self._send(410, b'{"error": "gone"}')
        else:
            self._send(200, b'{"path": "%s"}' % self.path.encode())

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "12345")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self._send(201, b'{"received": %d}' % len(body))

    def do_DELETE(self) -> None:
        self.send_response(204)
        self.end_headers()

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Tap:
    """Relays TCP connections to ``upstream`` and records every chunk as agent events."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.events: list[Update] = []
        self.lock = threading.Lock()
        self.next_id = 0
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _record(self, event: object) -> None:
        with self.lock:
            self.events.append(AgentEvent("local", event))  # type: ignore[arg-type]

    def _accept(self) -> None:
        while True:
            try:
                client, address = self.listener.accept()
            except OSError:
                return
            conn_id = self.next_id
            self.next_id += 1
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self._record(
                ConnectionOpened(
                    ts=time.time(),
                    conn=conn_id,
                    client=address[0],
                    client_port=address[1],
                    server="127.0.0.1",
                    server_port=self.upstream,
                )
            )
            done = threading.Barrier(
                2,
                action=lambda c=conn_id: self._record(  # type: ignore[misc]
                    ConnectionClosed(ts=time.time(), conn=c, reason="fin")
                ),
            )
            for source, sink, direction in ((client, server, "in"), (server, client, "out")):
                thread = threading.Thread(
                    target=self._pipe, args=(source, sink, direction, conn_id, done), daemon=True
                )
                thread.start()
                self.threads.append(thread)

    def _pipe(
        self,
        source: socket.socket,
        sink: socket.socket,
        direction: str,
        conn_id: int,
        done: threading.Barrier,
    ) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            # Recorded before forwarding: the other side cannot answer bytes it has not got.
            self._record(
                DataReceived(
                    ts=time.time(),
                    conn=conn_id,
                    direction=direction,  # type: ignore[arg-type]
                    data=data,
                )
            )
            sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        done.wait(timeout=10)

    def close(self) -> None:
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=10)


@pytest.fixture
def tap() -> Iterator[_Tap]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    relay = _Tap(server.server_address[1])
    try:
        yield relay
    finally:
        relay.close()
        server.shutdown()
        server.server_close()


def curl(*args: str) -> None:
    subprocess.run(["curl", "-s", "-o", "/dev/null", *args], check=True, timeout=20)


@pytest.mark.timeout(60)
def test_curl_keep_alive_post_head_delete_and_chunked_decode_as_sent(tap: _Tap) -> None:
    base = f"http://127.0.0.1:{tap.port}"
    # One connection, five requests (curl reuses it), then one each for POST, HEAD and DELETE.
    curl(
        "-H",
        "X-User-Id: alice",
        f"{base}/a",
        f"{base}/chunked",
        f"{base}/gone",
        f"{base}/b?x=1",
        f"{base}/chunked",
    )
    curl(
        "-H",
        "X-User-Id: bob",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        '{"item": 42}',
        f"{base}/orders",
    )
    curl("-I", f"{base}/big-file")
    curl("-X", "DELETE", f"{base}/orders/1")
    curl("--http1.0", f"{base}/old")
    tap.close()

    store = Store()
    store.apply(tap.events)
    conns = list(store.connections.values())
    assert len(conns) == 5
    assert all(c.protocol == "http" and c.state == "closed" for c in conns)
    seen = [
        (ex.request.method, ex.request.target, ex.status, ex.response.body if ex.response else None)
        for c in conns
        for ex in c.exchanges
    ]
    assert seen == [
        ("GET", "/a", 200, b'{"path": "/a"}'),
        ("GET", "/chunked", 200, b"first second third"),
        ("GET", "/gone", 410, b'{"error": "gone"}'),
        ("GET", "/b?x=1", 200, b'{"path": "/b?x=1"}'),
        ("GET", "/chunked", 200, b"first second third"),
        ("POST", "/orders", 201, b'{"received": 12}'),
        ("HEAD", "/big-file", 200, b""),
        ("DELETE", "/orders/1", 204, b""),
        ("GET", "/old", 200, b'{"path": "/old"}'),
    ]
    for conn in conns:
        for ex in conn.exchanges:
            assert ex.error is None
            assert not ex.incomplete
            assert ex.response is not None
            assert ex.response.complete
            assert ex.latency_ms is not None
            assert ex.latency_ms >= 0
    post = conns[1].exchanges[0]
    assert post.request.body == b'{"item": 42}'
    assert post.request.header("x-user-id") == "bob"
    assert conns[4].exchanges[0].request.http_version == "1.0"

    store.set_filter(parse_filter('~h "x-user-id: ^alice$" & ~c 4xx'))
    (only,) = store.visible_connections()
    assert [ex.request.path for ex in store.visible_exchanges(only.key)] == ["/gone"]
    assert store.header_inventory.stats("x-user-id") is not None


@pytest.mark.timeout(60)
def test_the_same_traffic_decodes_the_same_when_replayed_byte_by_byte(tap: _Tap) -> None:
    base = f"http://127.0.0.1:{tap.port}"
    curl(f"{base}/a", f"{base}/chunked", f"{base}/gone")
    tap.close()
    whole = Store()
    whole.apply(tap.events)
    bytewise = Store()
    for update in tap.events:
        event = update.event  # type: ignore[union-attr]
        if isinstance(event, DataReceived):
            for i in range(len(event.data)):
                piece = DataReceived(
                    ts=event.ts,
                    conn=event.conn,
                    direction=event.direction,
                    data=event.data[i : i + 1],
                )
                bytewise.apply([AgentEvent("local", piece)])
        else:
            bytewise.apply([update])

    def view(store: Store) -> list[tuple[str, int | None, bytes]]:
        return [
            (ex.request.target, ex.status, ex.response.body if ex.response else b"")
            for c in store.connections.values()
            for ex in c.exchanges
        ]

    assert view(bytewise) == view(whole)
    assert len(view(whole)) == 3
