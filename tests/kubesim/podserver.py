"""The simulated workload image: an HTTP/1.1 server that says which pod answered.

``python -m tests.kubesim.podserver POD_NAME [PORT ...]``: every request gets 200 with header
``x-pod: POD_NAME`` and the body ``POD_NAME METHOD PATH``. Without ports it just waits, as a
sidecar image does.
"""

from __future__ import annotations

import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


def make_handler(pod_name: str) -> type[BaseHTTPRequestHandler]:
    class PodHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "kubesim-pod/1"

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            body = f"{pod_name} {self.command} {self.path}\n".encode()
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.send_header("x-pod", pod_name)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return PodHandler


def main(argv: list[str]) -> None:
    pod_name, ports = argv[0], [int(port) for port in argv[1:]]
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    servers = []
    for port in ports:
        server = ThreadingHTTPServer(("0.0.0.0", port), make_handler(pod_name))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    print(f"{pod_name} serving on {ports}", file=sys.stderr, flush=True)
    stop.wait()
    for server in servers:
        server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
