"""``podtap dump --stats``: a scripted run against a real server, curl as the client, and the
endpoints table podtap prints compared with the counts the script knows."""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import time
from collections.abc import Iterator

import pytest

from tests.integration.test_dump import PORT, curl, running_dump, url
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.timeout(90)]

# Answers every request with the status its query asks for (?status=404), then closes.
SERVER = f"""
import re, socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
server = socket.socket(family)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], {PORT}))
server.listen(128)
while True:
    conn, _ = server.accept()
    try:
        request = b""
        while b"\\r\\n\\r\\n" not in request:
            chunk = conn.recv(65536)
            if not chunk:
                break
            request += chunk
        if request:
            found = re.search(rb"status=(\\d+)", request)
            status = found.group(1) if found else b"200"
            conn.sendall(b"HTTP/1.1 " + status + b" X\\r\\nContent-Length: 2\\r\\n"
                         b"Connection: close\\r\\n\\r\\nok")
    except OSError:
        pass
    conn.close()
"""

SCRIPT = [
    *(f"/api/users/{n}" for n in (1, 2, 3)),
    "/api/users/4?status=404",
    "/api/users/5?status=404",
    "/api/users/6?status=500",
    "/api/orders/0b5f7c1e-8a8e-4c7e-9d8c-3f1d2a6b7c8d",
    "/api/orders/1f0e9c2b-0000-4c7e-9d8c-3f1d2a6b7c8d?status=503",
    "/healthz",
    "/healthz",
]
EXPECTED = {
    # (method, route): (requests, 4xx, 5xx)
    ("GET", "/api/users/{id}"): (6, 2, 1),
    ("GET", "/api/orders/{uuid}"): (2, 0, 1),
    ("GET", "/healthz"): (2, 0, 0),
}


def last_table(stdout: bytes) -> dict[tuple[str, str], tuple[int, int, int]]:
    if not stdout.endswith(b"\n\n"):
        return {}  # a table is being written
    tables = stdout.decode().strip().split("\n\n")
    rows: dict[tuple[str, str], tuple[int, int, int]] = {}
    for line in tables[-1].splitlines()[1:]:
        method, route, _proto, requests, _rate, client, server, *_ = line.split()
        rows[(method, route)] = (int(requests), int(client), int(server))
    return rows


@contextlib.contextmanager
def serving_statuses(lab: Lab) -> Iterator[None]:
    server = lab.popen([sys.executable, "-c", SERVER, lab.ns_ip])
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


async def test_stats_match_a_scripted_run(lab: Lab) -> None:
    with serving_statuses(lab):
        async with running_dump(
            f"netns/{lab.name}", "-p", str(PORT), "--stats", "--stats-interval", "0.5"
        ) as dump:
            await dump.wait_for_stderr("Listening for traffic")
            for path in SCRIPT:
                await curl(url(lab.ns_ip, path))
            await dump.wait_for_stdout(lambda out: last_table(out) == EXPECTED)
            status, stdout = await dump.stop(signal.SIGTERM)
    assert status == 0
    tables = stdout.decode().strip().split("\n\n")
    assert len(tables) >= 2  # one every half second, and the last at exit
    heading = tables[-1].splitlines()[0].split()
    assert heading[:4] == ["METHOD", "ENDPOINT", "PROTO", "REQS"]
    assert last_table(stdout) == EXPECTED
    assert "http" in tables[-1]
    assert not any("Traceback" in line for line in dump.stderr_lines)


async def test_stats_refuse_traffic_options() -> None:
    async with running_dump("host", "-p", "80", "--stats", "--http") as dump:
        line = await dump.wait_for_stderr("--stats")
        assert "leave out" in line
        await dump.process.wait()
    assert dump.process.returncode != 0
