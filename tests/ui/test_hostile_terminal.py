"""The app in a real terminal (tmux) shows escape sequences from the traffic instead of obeying
them: an OSC 0 in a header or a body does not retitle the window, an OSC 52 does not reach the
clipboard, in the exchange, the raw view and the header inventory."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile_traffic import escape_script
from tests.ui.test_tmux import ROOT, Terminal, clean_environment
from tui.output.jsonl import JsonLinesWriter

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(f"podtap-hostile-{tmp_path.name}")
    try:
        yield term
    finally:
        term.close()


def title(terminal: Terminal, session: str = "podtap") -> str:
    return terminal.tmux("display", "-p", "-t", session, "#{pane_title}").strip()


def clipboard_buffers(terminal: Terminal) -> str:
    return terminal.tmux("list-buffers")


def test_the_terminal_obeys_these_sequences_when_printed_raw(terminal: Terminal) -> None:
    """The control: the same bytes printed by a plain program do retitle and copy."""
    terminal.start("printf 'start\\n'; sleep 30")
    terminal.tmux("set", "-g", "set-clipboard", "on")
    terminal.tmux(
        "new-session",
        "-d",
        "-s",
        "raw",
        "printf '\\033]0;pwned\\007\\033]52;c;cGF5bG9hZA==\\033\\\\'; sleep 30",
    )
    deadline = time.monotonic() + 10
    while title(terminal, "raw") != "pwned" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert title(terminal, "raw") == "pwned"
    assert (
        "payload"
        in subprocess.run(
            ["tmux", "-L", terminal.socket, "show-buffer"],
            capture_output=True,
            text=True,
            env=clean_environment(),
        ).stdout
    )


def test_the_app_shows_escape_sequences_instead_of_obeying_them(
    terminal: Terminal, tmp_path: Path
) -> None:
    recording = tmp_path / "hostile.jsonl"
    with recording.open("wb") as stream:
        JsonLinesWriter(stream).write(escape_script().updates())
    terminal.start("printf 'start\\n'; sleep 60", width=200, height=50)
    terminal.tmux("set", "-g", "set-clipboard", "on")
    terminal.tmux(
        "respawn-pane",
        "-k",
        "-t",
        "podtap",
        f"cd {ROOT} && exec {sys.executable} -m tui open {recording}",
    )
    before = title(terminal)
    terminal.wait_for(lambda s: "/upload" in s, "the request in the list")
    terminal.keys("Enter")
    screen = terminal.wait_for(lambda s: "X-Note" in s, "the exchange in the detail pane")
    assert "\\x1b]52;c;cGF5bG9hZA==\\x1b\\" in screen
    assert "t\\x1b]0;pwned\\x07" in screen  # a response header value
    assert "title\\x1b]0;pwned\\x07body" in screen  # the request body
    terminal.keys("r")
    terminal.wait_for(lambda s: "client → server" in s, "the raw view")
    terminal.keys("h")
    terminal.wait_for(lambda s: "x-note" in s.lower() and "values of" in s, "header inventory")
    time.sleep(0.5)  # whatever was drawn has reached tmux
    assert title(terminal) == before
    assert "pwned" not in title(terminal)
    assert clipboard_buffers(terminal) == ""
    terminal.keys("q")
