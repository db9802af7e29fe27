"""The inspector outside a terminal (piped, or run with no keyboard): one sentence and exit 1,
instead of escape codes in a pipe and a wait for keys that never come."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ui.fakes import shop_updates
from tui.model.updates import AgentEvent
from tui.output.jsonl import JsonLinesWriter, RecordingHeader

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]


def recording(tmp_path: Path) -> Path:
    path = tmp_path / "shop.jsonl"
    with path.open("wb") as stream:
        writer = JsonLinesWriter(stream, RecordingHeader(podtap="t", target="netns/shop", ports=[]))
        writer.write([u for u in shop_updates() if isinstance(u, AgentEvent)])
    return path


def podtap_open(path: Path, stdout: int) -> subprocess.CompletedProcess[bytes]:
    """``podtap open PATH`` with no keyboard (stdin from /dev/null) and ``stdout``."""
    return subprocess.run(
        [sys.executable, "-m", "tui", "open", str(path)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=20,
    )


def test_open_piped_says_it_needs_a_terminal(tmp_path: Path) -> None:
    done = podtap_open(recording(tmp_path), subprocess.PIPE)
    assert done.returncode == 1
    assert done.stdout == b""
    assert done.stderr.decode() == (
        "podtap: The inspector is full-screen and needs a terminal, and stdout is not one: "
        "run it in a terminal (podtap dump prints a live target's traffic as text).\n"
    )


def test_open_on_a_terminal_without_a_keyboard_says_so(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        done = podtap_open(recording(tmp_path), terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 1
    assert b"and stdin is not one" in done.stderr
