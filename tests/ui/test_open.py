"""``podtap open`` on each format, in the app through Textual's pilot: a JSON-lines recording,
a HAR, podtap's own pcap and a pcap that tcpdump wrote of real traffic in a network namespace."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netlab import Lab
from tests.ui.driving import SIZE, frozen_clock, screen_text
from tests.ui.fakes import ORDER_CONN, shop_script
from tui.model.store import Store
from tui.output.har import har_of_view
from tui.output.jsonl import JsonLinesWriter, RecordingHeader
from tui.output.pcap import PcapFileWriter
from tui.sources.recording import RecordingSession
from tui.views.app import PodtapApp
from tui.views.screens.headers import HeaderInventoryScreen

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
SHOP_PORTS = [8080, 7000, 8443]


def write_shop(path: Path) -> None:
    """The shop traffic of the app's tests, written in the format ``path`` names."""
    script = shop_script()
    if path.suffix == ".jsonl":
        with path.open("wb") as stream:
            JsonLinesWriter(stream, RecordingHeader("0.1.0", "netns/shop", SHOP_PORTS)).write(
                script.updates()
            )
    elif path.suffix == ".pcap":
        with path.open("wb") as stream:
            writer = PcapFileWriter(stream)
            for event in script.events:
                writer.write("local", event)
            writer.flush()
    else:
        store = Store()
        store.apply(script.updates())
        view = [(conn, conn.exchanges) for conn in store.connections.values()]
        path.write_bytes(har_of_view(view, "0.1.0", reveal=False)[0])


def opened_app(path: Path, ports: list[int] | None = None) -> PodtapApp:
    return PodtapApp(
        RecordingSession(path, ports or []), title=f"podtap {path.name}", clock=frozen_clock
    )


async def drained(app: PodtapApp) -> None:
    async with asyncio.timeout(20):
        await app.stream_finished.wait()
    app.draw()


@pytest.mark.parametrize("suffix", ["jsonl", "har", "pcap"])
async def test_each_format_opens_with_panes_filters_and_header_inventory(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"shop.{suffix}"
    write_shop(path)
    app = opened_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await drained(app)
        await pilot.pause()
        main = app.main_screen
        http_connections = 7 if suffix == "har" else 9  # HAR holds HTTP exchanges only
        assert len(main.connections_table.rows) == http_connections
        text = screen_text(app)
        assert f"shop.{suffix}" in text
        assert "end of stream" in text
        assert "198.18.0.1:42000" in text
        # The filter works on a recording as on live traffic.
        await pilot.press("slash", *"~c 5xx", "enter")
        await pilot.pause()
        assert [conn.server_port for conn in main.connections_table.rows] == [8080]
        (order,) = main.connections_table.rows
        assert order.client_port == 42000
        await pilot.press("escape")
        await pilot.pause()
        # The header inventory ranks the user header first, as it does live.
        await pilot.press("h")
        await pilot.pause()
        assert isinstance(app.screen, HeaderInventoryScreen)
        assert "x-user-id" in screen_text(app)
        await pilot.press("escape")
        # Secrets are masked on screen whatever the format.
        main.connections_table.move_cursor_to(
            next(i for i, c in enumerate(main.connections_table.rows) if c.client_port == 40102)
        )
        await pilot.pause()
        assert "token-of-alice" not in screen_text(app)
    assert ORDER_CONN == 8


async def test_a_file_that_does_not_parse_stops_the_stream_with_a_sentence(
    tmp_path: Path,
) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"type":"open","conn":0}\nnot json\n')
    app = opened_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await drained(app)
        await pilot.pause()
        messages = [str(n.message) for n in app._notifications]
        assert any("broken.jsonl line 1 is not a podtap event" in m for m in messages), messages


def podtap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args], cwd=REPO, capture_output=True, text=True, timeout=30
    )


def test_open_says_in_one_sentence_what_it_cannot_open(tmp_path: Path) -> None:
    missing = podtap("open", str(tmp_path / "nothing.har"))
    assert (missing.returncode, missing.stderr) == (
        1,
        f"podtap: {tmp_path / 'nothing.har'} does not exist (or is not a file).\n",
    )
    (tmp_path / "notes.txt").write_text("x")
    wrong = podtap("open", str(tmp_path / "notes.txt"))
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("podtap: ")
    assert "opens .jsonl, .har and .pcap files" in wrong.stderr
    assert "Traceback" not in wrong.stderr


# --- a pcap that tcpdump wrote ---------------------------------------------------------------

SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_GET(self):
        body = ('{"user": "%s"}' % self.headers.get("x-user-id", "")).encode()
        self.send_response(404 if "missing" in self.path else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer((sys.argv[1], 8080), Handler).serve_forever()
"""


@contextlib.contextmanager
def tcpdump_capture(lab: Lab, path: Path) -> Iterator[None]:
    """tcpdump on the lab namespace's veth end into ``path``."""
    links = subprocess.run(
        ["ip", "-n", lab.name, "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    (veth,) = [line.split(": ")[1].split("@")[0] for line in links if ": lo:" not in line]
    # Immediate mode: packets reach the file as they come, not a buffer timeout later.
    dump = lab.popen(
        ["tcpdump", "--immediate-mode", "-U", "-i", veth, "-w", str(path), "tcp port 8080"],
        stderr=subprocess.PIPE,
    )
    try:
        assert dump.stderr is not None
        deadline = time.monotonic() + 10
        while b"listening on" not in dump.stderr.readline():
            assert time.monotonic() < deadline, "tcpdump did not start"
            assert dump.poll() is None, "tcpdump exited"
        yield
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(10)


@pytest.mark.root
def test_a_pcap_written_by_tcpdump_opens(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "tcpdump.pcap"
    server = lab.popen([sys.executable, "-c", SERVER, lab.ns_ip])
    try:
        with tcpdump_capture(lab, path):
            base = f"http://{lab.ns_ip}:8080"
            for _attempt in range(100):
                done = subprocess.run(
                    ["curl", "-s", "-o", "/dev/null", f"{base}/ready"], timeout=10
                )
                if done.returncode == 0:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the server did not answer")
            for user in ("alice", "bob", "carol"):
                subprocess.run(
                    [
                        "curl",
                        "-s",
                        "-o",
                        "/dev/null",
                        "-H",
                        f"x-user-id: {user}",
                        f"{base}/users/{user}",
                        f"{base}/missing",
                    ],
                    check=True,
                    timeout=10,
                )
            time.sleep(0.3)
    finally:
        server.kill()
        server.wait()
    asyncio.run(check_tcpdump_file(path))


async def check_tcpdump_file(path: Path) -> None:
    app = opened_app(path)  # no -p: the server port is guessed from the SYNs
    async with app.run_test(size=SIZE) as pilot:
        await drained(app)
        await pilot.pause()
        store = app.store
        exchanges = [ex for conn in store.connections.values() for ex in conn.exchanges]
        # curl's ready probes may have been refused before the server listened: not counted.
        wanted = [
            (ex.request.target, ex.status, ex.request.header("x-user-id"))
            for ex in exchanges
            if ex.request.target != "/ready"
        ]
        assert sorted(wanted, key=str) == sorted(
            [(f"/users/{u}", 200, u) for u in ("alice", "bob", "carol")]
            + [("/missing", 404, u) for u in ("alice", "bob", "carol")],
            key=str,
        )
        # Ready probes sent before the server listened were refused (reset); the rest closed.
        used = [
            conn
            for conn in store.connections.values()
            if any(ex.request.target != "/ready" for ex in conn.exchanges)
        ]
        assert [conn.state for conn in used] == ["closed"] * 3
        assert all(not ex.incomplete and ex.latency_ms is not None for ex in exchanges)
        await pilot.press("h")
        await pilot.pause()
        assert "x-user-id" in screen_text(app)
    assert json.dumps(wanted)
