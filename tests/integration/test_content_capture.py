"""Bodies, trailers and 1xx responses from real peers, as podtap decodes them: nginx with
``gzip on`` and curl, a chunked response with trailers, and curl's ``Expect: 100-continue``.
Each is compared with what the peers sent and received themselves."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.decoded_capture import capture, run, start_in_lab, wait_listening
from tests.netlab import Lab
from tui.model.content import decode_body
from tui.model.filters import parse_filter

pytestmark = [pytest.mark.root, pytest.mark.timeout(90)]

PORT = 8090
PAGE = "<!doctype html><title>shop</title>\n" + "".join(
    f"<p>product {n}: a very good product, on sale</p>\n" for n in range(400)
)
DATA = '{"items": [' + ", ".join(f'{{"sku": "sku-{n}", "stock": {n % 7}}}' for n in range(300))
DATA += "]}"

NGINX_CONF = """
daemon off;
user root;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root};
    proxy_temp_path {root};
    fastcgi_temp_path {root};
    uwsgi_temp_path {root};
    scgi_temp_path {root};
    types {{ text/html html; application/json json; }}
    gzip on;
    gzip_types application/json;
    gzip_min_length 100;
    server {{
        listen {address}:{port};
        root {root}/www;
    }}
}}
"""

# Answers GET with a chunked body followed by trailers, and PUT (after the 100 Continue that
# Python's http.server sends by itself when asked) with the body's digest.
TRAILER_SERVER = """
import hashlib, http.server, sys
CHUNKS = [b"first chunk\\n", b"second chunk\\n", b"last one\\n"]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Trailer", "X-Checksum, X-Served-By")
        self.end_headers()
        for chunk in CHUNKS:
            self.wfile.write(b"%x\\r\\n%s\\r\\n" % (len(chunk), chunk))
        digest = hashlib.sha256(b"".join(CHUNKS)).hexdigest()
        self.wfile.write(b"0\\r\\nX-Checksum: sha256=%s\\r\\nX-Served-By: lab\\r\\n\\r\\n"
                         % digest.encode())
    def do_PUT(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        reply = hashlib.sha256(body).hexdigest().encode()
        self.send_response(201)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"""


@contextlib.contextmanager
def nginx(lab: Lab, root: Path) -> Iterator[str]:
    (root / "www").mkdir()
    (root / "www" / "index.html").write_text(PAGE)
    (root / "www" / "data.json").write_text(DATA)
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, address=lab.ns_ip, port=PORT))
    server = lab.popen(["nginx", "-c", str(conf), "-p", str(root)], stderr=subprocess.DEVNULL)
    try:
        wait_listening(lab.ns_ip, PORT, server)
        yield f"http://{lab.ns_ip}:{PORT}"
    finally:
        server.terminate()
        server.wait()


@pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
async def test_nginx_gzip_bodies_are_decoded_to_what_nginx_served(lab: Lab, tmp_path: Path) -> None:
    with nginx(lab, tmp_path) as base:
        received: dict[str, bytes] = {}

        async def traffic() -> None:
            for path in ("/index.html", "/data.json"):
                received[path] = await run("curl", "-sS", "--compressed", f"{base}{path}")

        decoded = await capture(lab, PORT, traffic, closes=2)
    served = {"/index.html": PAGE.encode(), "/data.json": DATA.encode()}
    assert received == served  # curl itself decoded them to the files
    har = {entry["request"]["url"].rsplit("/", 1)[1]: entry for entry in decoded.har()}
    for exchange in decoded.exchanges:
        response = exchange.response
        assert response is not None
        assert response.header("content-encoding") == "gzip"
        assert response.body_length < len(served[exchange.request.path]) / 3
        assert decode_body(response).data == served[exchange.request.path]
        content = har[exchange.request.path[1:]]["response"]["content"]
        assert content["text"] == served[exchange.request.path].decode()
        assert content["size"] == len(served[exchange.request.path])
        assert content["compression"] == content["size"] - response.body_length
        assert "encoding" not in content
    # The ~b filter searches the decoded text.
    search = parse_filter("~b 'product 399'")
    found = [
        ex.request.path
        for conn in decoded.connections
        for ex in conn.exchanges
        if search.matches_exchange(ex, conn)
    ]
    assert found == ["/index.html"]


async def test_a_chunked_response_keeps_its_trailers(lab: Lab) -> None:
    server = start_in_lab(lab, TRAILER_SERVER, lab.ns_ip, PORT)
    try:
        out: list[bytes] = []

        async def traffic() -> None:
            out.append(await run("curl", "-sS", f"http://{lab.ns_ip}:{PORT}/report"))

        decoded = await capture(lab, PORT, traffic)
    finally:
        server.kill()
        server.wait()
    body = b"first chunk\nsecond chunk\nlast one\n"
    assert out == [body]
    checksum = f"sha256={hashlib.sha256(body).hexdigest()}"
    (exchange,) = decoded.exchanges
    assert exchange.response is not None
    assert exchange.response.body == body
    assert list(exchange.response.trailers) == [("X-Checksum", checksum), ("X-Served-By", "lab")]
    text = decoded.text.splitlines()
    at = text.index("Trailers:")
    assert text[at - 1] == "Trailer: X-Checksum, X-Served-By"
    assert text[at + 1 : at + 3] == [f"X-Checksum: {checksum}", "X-Served-By: lab"]
    (entry,) = decoded.har()
    assert entry["response"]["headers"][-2:] == [
        {"name": "X-Checksum", "value": checksum, "comment": "trailer"},
        {"name": "X-Served-By", "value": "lab", "comment": "trailer"},
    ]


async def test_expect_100_continue_shows_the_interim_response_first(
    lab: Lab, tmp_path: Path
) -> None:
    server = start_in_lab(lab, TRAILER_SERVER, lab.ns_ip, PORT)
    upload = bytes(range(256)) * 8
    (tmp_path / "upload").write_bytes(upload)
    try:
        out: list[bytes] = []

        async def traffic() -> None:
            out.append(
                await run(
                    "curl",
                    "-sS",
                    "-X",
                    "PUT",
                    "--data-binary",
                    f"@{tmp_path / 'upload'}",
                    "-H",
                    "Expect: 100-continue",
                    f"http://{lab.ns_ip}:{PORT}/upload",
                )
            )

        decoded = await capture(lab, PORT, traffic)
    finally:
        server.kill()
        server.wait()
    assert out == [hashlib.sha256(upload).hexdigest().encode()]
    (exchange,) = decoded.exchanges
    assert exchange.request.header("expect") == "100-continue"
    assert exchange.request.body == upload
    assert [(r.status, r.reason) for r in exchange.informational] == [(100, "Continue")]
    assert exchange.status == 201
    conn = exchange.key[1]
    blocks = [line for line in decoded.text.splitlines() if line.startswith("## ")]
    assert blocks[1:] == [f"## Response [{conn}:0] 100 Continue", blocks[2]]
    assert blocks[2].startswith(f"## Response [{conn}:0] 201 Created (")
