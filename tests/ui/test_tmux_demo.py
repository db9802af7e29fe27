"""``podtap demo`` in a real terminal: tmux runs it with its live gRPC service and WebSocket
chat; filters pick a streaming call and the chat, and the detail pane shows the call's messages
decoded without the schema and the chat's messages both ways."""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.test_tmux import Terminal

pytestmark = [
    pytest.mark.root,
    pytest.mark.timeout(150),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]

ROOT = Path(__file__).resolve().parents[2]
TICK = re.compile(r'1: "sku-\d+"')
"""A price tick or a stock request as protoc --decode_raw shows it: field 1, the sku."""


@pytest.fixture
def demo_terminal() -> Iterator[Terminal]:
    term = Terminal(f"podtap-demo-test-{time.monotonic_ns()}")
    try:
        yield term
    finally:
        if term.alive():
            # q, not the tmux server's hang-up: the demo removes its namespace as it quits.
            term.keys("q")
            deadline = time.monotonic() + 20
            while term.alive() and time.monotonic() < deadline:
                time.sleep(0.2)
        term.close()


def filter_then_open(terminal: Terminal, expression: str, shown: str) -> None:
    """Filter the connections, wait for ``shown`` in the list, and open the first one's
    requests (the detail pane then shows its first request). The screen is paused from the
    first filter on, so that rows stop moving under the cursor."""
    terminal.keys("Escape")
    terminal.keys("/")
    terminal.type(expression)
    terminal.keys("Enter")
    terminal.wait_for(
        lambda s: f"filter {expression}" in s and shown in s,
        f"the filter {expression} in force",
        timeout=40,
    )
    if "paused" not in terminal.screen():
        terminal.keys("space")
        terminal.wait_for(lambda s: "paused" in s, "the screen pausing")
    terminal.keys("Enter")


def test_demo_shows_a_grpc_call_and_a_websocket_conversation(demo_terminal: Terminal) -> None:
    terminal = demo_terminal
    terminal.start(
        f"cd {ROOT} && exec {sys.executable} -m tui demo --duration 120", width=200, height=100
    )
    terminal.wait_for(
        lambda s: " grpc " in s and " ws " in s,
        "gRPC and WebSocket connections in the demo",
        timeout=60,
    )

    filter_then_open(terminal, "~p WatchPrices", "grpc")
    screen = terminal.wait_for(
        lambda s: "WatchPrices HTTP/2" in s and "messages (" in s and len(TICK.findall(s)) >= 2,
        "a price watch with its messages decoded",
        timeout=30,
    )
    assert "← " in screen  # the server's ticks
    assert "→ " in screen  # the client's request

    filter_then_open(terminal, "~ws", "ws")
    screen = terminal.wait_for(
        lambda s: "101 Switching Protocols" in s and "messages (" in s and '"text"' in s,
        "the chat's messages under its 101",
        timeout=30,
    )
    assert "→ " in screen
    assert "← " in screen

    terminal.keys("q")
    terminal.wait_for(lambda s: not terminal.alive(), "the demo quitting", timeout=30)
