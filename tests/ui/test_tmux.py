"""podtap in a real terminal: tmux runs ``podtap netns/NAME -p PORT`` on a namespace with a
live HTTP server and curl traffic; keys go in with send-keys, the screen comes back with
capture-pane."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.netlab import Lab

pytestmark = [
    pytest.mark.root,
    pytest.mark.timeout(90),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]

ROOT = Path(__file__).resolve().parents[2]
PORT = 8080


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


class Terminal:
    """One tmux server of our own (its own socket), one window running a command."""

    def __init__(self, name: str) -> None:
        self.socket = name
        self.socket_path = ""

    def tmux(self, *args: str) -> str:
        # -f /dev/null: no user or system config (it may force a window size, or bind keys).
        # env: a fresh copy of os.environ, without COLUMNS/LINES some test plugins leave in
        # the process environment, which would make the app ignore the window's real size.
        result = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            check=True,
            capture_output=True,
            text=True,
            env=clean_environment(),
        )
        return result.stdout

    def start(self, command: str, width: int = 160, height: int = 45) -> None:
        self.tmux("new-session", "-d", "-s", "podtap", "-x", str(width), "-y", str(height), command)
        self.socket_path = self.tmux("display", "-p", "#{socket_path}").strip()

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "podtap", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "podtap", "-l", text)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "podtap")

    def alive(self) -> bool:
        return (
            subprocess.run(
                ["tmux", "-L", self.socket, "has-session", "-t", "podtap"],
                capture_output=True,
                env=clean_environment(),
            ).returncode
            == 0
        )

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 25) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen() if self.alive() else screen
            if check(screen):
                return screen
            time.sleep(0.25)
        raise AssertionError(f"{what} did not happen; the screen was:\n{screen}")

    def close(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"], capture_output=True, env=clean_environment()
        )
        if self.socket_path:
            # A server that ended with its last window leaves its socket file behind.
            Path(self.socket_path).unlink(missing_ok=True)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal(f"podtap-test-{os.getpid()}")
    try:
        yield term
    finally:
        term.close()


@pytest.fixture
def served_lab(lab: Lab, tmp_path: Path) -> Iterator[Lab]:
    """An HTTP server in the namespace and curl calling it from the host, until the test ends."""
    (tmp_path / "orders.json").write_text('{"orders": []}')
    (tmp_path / "users.json").write_text('{"users": ["alice"]}')
    server = lab.popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(PORT),
            "--bind",
            lab.ns_ip,
            "--directory",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = threading.Event()

    def call() -> None:
        paths = ("/orders.json", "/users.json", "/missing-page")
        n = 0
        while not stop.is_set():
            subprocess.run(
                [
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "2",
                    f"http://{lab.ns_ip}:{PORT}{paths[n % len(paths)]}",
                ],
                capture_output=True,
            )
            n += 1
            stop.wait(0.3)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    try:
        yield lab
    finally:
        stop.set()
        caller.join(timeout=5)
        server.terminate()
        server.wait(timeout=5)


def agent_processes(netns: str) -> list[int]:
    """Agents tapping ``netns``: processes running ``-m agent`` with that name in argv."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"agent" in argv and netns.encode() in argv:
            found.append(int(entry.name))
    return found


def test_podtap_in_tmux(served_lab: Lab, terminal: Terminal) -> None:
    lab = served_lab
    terminal.start(f"cd {ROOT} && exec {sys.executable} -m tui netns/{lab.name} -p {PORT}")
    # Each curl is a connection of its own: the newest one's request shows on the right.
    for path in ("/orders.json", "/users.json", "/missing-page"):
        terminal.wait_for(lambda s, path=path: path in s, f"{path} showing up")
    assert "agents 1/1" in terminal.screen()
    assert agent_processes(lab.name), "the agent should be running while podtap is"

    terminal.keys("/")
    terminal.type("~c 404")
    terminal.keys("Enter")
    screen = terminal.wait_for(
        lambda s: "filter ~c 404" in s and "/missing-page" in s, "the filter narrowing to 404s"
    )
    assert "/orders.json" not in screen
    assert "/users.json" not in screen

    terminal.keys("q")
    terminal.wait_for(lambda s: not terminal.alive(), "podtap quitting", timeout=15)
    deadline = time.monotonic() + 10
    while agent_processes(lab.name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert agent_processes(lab.name) == [], "the agent must be gone after q"
