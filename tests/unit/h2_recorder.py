"""Records the bytes of real HTTP/2 and gRPC conversations for the unit tests.

Not a test: run ``python -m tests.unit.h2_recorder`` (needs nghttpd, nghttp, curl, hypercorn,
grpcio) to write ``tests/unit/h2_recordings/*.jsonl``. Each client talks to its server through
a relay on loopback that writes every chunk it forwards, in the order it forwarded them, as
``["in"|"out", base64]`` lines ("in" is client to server).
"""

from __future__ import annotations

import base64
import json
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

OUT = Path(__file__).parent / "h2_recordings"


class Relay:
    """Accepts one connection on ``port`` and forwards it to ``target``, logging chunks."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.chunks: list[tuple[str, bytes]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target))
        peers = {client: (server, "in"), server: (client, "out")}
        sel = selectors.DefaultSelector()
        for sock in peers:
            sel.register(sock, selectors.EVENT_READ)
        open_count = 2
        while open_count:
            for key, _ in sel.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                data = sock.recv(65536)
                other, direction = peers[sock]
                if not data:
                    sel.unregister(sock)
                    open_count -= 1
                    with suppress(OSError):
                        other.shutdown(socket.SHUT_WR)
                    continue
                self.chunks.append((direction, data))
                other.sendall(data)
        client.close()
        server.close()

    def save(self, name: str) -> None:
        self.thread.join(10)
        OUT.mkdir(exist_ok=True)
        with (OUT / f"{name}.jsonl").open("w") as out:
            for direction, data in self.chunks:
                out.write(json.dumps([direction, base64.b64encode(data).decode()]) + "\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def server(argv: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def record(name: str, port: int, client: Callable[[int], None]) -> None:
    relay = Relay(port)
    client(relay.port)
    relay.save(name)
    print(f"{name}: {len(relay.chunks)} chunks")


def nghttp_cases(root: Path) -> None:
    (root / "page.html").write_text("<h1>hello</h1>\n" * 20)
    (root / "big.bin").write_bytes(bytes(range(256)) * 400)
    (root / "post.txt").write_text("name=podtap&kind=tap\n")
    port = free_port()
    with server(["nghttpd", "--no-tls", "-d", str(root), str(port)], port):
        record(
            "nghttp-concurrent",
            port,
            lambda p: _run(
                [
                    "nghttp",
                    "-n",
                    f"http://127.0.0.1:{p}/page.html",
                    f"http://127.0.0.1:{p}/big.bin",
                    f"http://127.0.0.1:{p}/missing",
                    "-H",
                    "x-user-id: alice",
                ]
            ),
        )
        record(
            "nghttp-post",
            port,
            lambda p: _run(
                ["nghttp", "-n", "-d", str(root / "post.txt"), f"http://127.0.0.1:{p}/page.html"]
            ),
        )


def hypercorn_cases(root: Path) -> None:
    app = root / "h2app.py"
    app.write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n        return\n"
        "    body = b''\n"
        "    while True:\n"
        "        event = await receive()\n"
        "        body += event.get('body', b'')\n"
        "        if not event.get('more_body'):\n            break\n"
        "    text = f\"{scope['method']} {scope['path']} {len(body)}\\n\".encode()\n"
        "    await send({'type': 'http.response.start', 'status': 200,\n"
        "                'headers': [(b'content-type', b'text/plain'), (b'x-app', b'demo')]})\n"
        "    await send({'type': 'http.response.body', 'body': text})\n"
    )
    port = free_port()
    argv = [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "h2app:app"]
    proc = subprocess.Popen(argv, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        record(
            "curl-prior-knowledge",
            port,
            lambda p: _run(
                [
                    "curl",
                    "-sS",
                    "--http2-prior-knowledge",
                    "-d",
                    "hello=1",
                    f"http://127.0.0.1:{p}/submit?x=1",
                ]
            ),
        )
        record(
            "curl-h2c-upgrade",
            port,
            lambda p: _run(["curl", "-sS", "--http2", f"http://127.0.0.1:{p}/upgraded"]),
        )
    finally:
        proc.terminate()
        proc.wait(10)


def grpc_cases() -> None:
    import grpc

    from tests.grpc_peers import start_server

    grpc_server, port = start_server()
    try:

        def calls(p: int) -> None:
            from tests.grpc_peers import run_all_calls

            run_all_calls(f"127.0.0.1:{p}")

        record("grpc-calls", port, calls)

        def gzip_calls(p: int) -> None:
            with grpc.insecure_channel(
                f"127.0.0.1:{p}", compression=grpc.Compression.Gzip
            ) as channel:
                from tests.grpc_peers import unary

                unary(channel, "gzip " * 40)

        record("grpc-gzip", port, gzip_calls)
    finally:
        grpc_server.stop(None)


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=30)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        nghttp_cases(Path(tmp))
        hypercorn_cases(Path(tmp))
    grpc_cases()


if __name__ == "__main__":
    main()
