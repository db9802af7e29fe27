"""The inspector's views in a real terminal on the demo's live traffic: tmux runs
``podtap demo``; ``tab``, ``e``, ``f`` and ``n`` go in with send-keys, and the screen comes
back with capture-pane."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator

import pytest

from tests.ui.test_tmux import ROOT, Terminal

pytestmark = [
    pytest.mark.root,
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]


@pytest.fixture
def demo_terminal() -> Iterator[Terminal]:
    if os.geteuid() != 0:
        pytest.skip("needs root for the demo's network namespace")
    term = Terminal(f"podtap-inspector-{os.getpid()}")
    try:
        yield term
    finally:
        term.close()


def test_requests_endpoints_and_find_on_the_demo(demo_terminal: Terminal) -> None:
    terminal = demo_terminal
    terminal.start(f"cd {ROOT} && exec {sys.executable} -m tui demo")
    terminal.wait_for(
        lambda s: "/api/" in s and "agents 1/1" in s, "demo traffic showing up", timeout=40
    )

    terminal.keys("Tab")
    screen = terminal.wait_for(lambda s: "requests view:" in s, "the requests view")
    assert "every request, newest first" in screen
    assert re.search(r"\b(GET|POST|DELETE)\s+/api/", screen)

    terminal.keys("e")
    screen = terminal.wait_for(
        lambda s: "endpoints (" in s and "/api/users/" in s and "p99" in s, "the endpoints view"
    )
    assert "/api/cart/items/" in screen or "/api/orders" in screen
    terminal.keys("Escape")
    terminal.wait_for(lambda s: "requests view:" in s, "back from the endpoints view")

    terminal.keys("f")
    terminal.type("alice")
    terminal.wait_for(lambda s: "matches here" in s, "the find prompt counting")
    terminal.keys("Enter")
    terminal.wait_for(lambda s: "matches here" not in s, "the find prompt closing")
    terminal.keys("n")
    # Jumping to a match stops following; the status bar may say so a frame after the pane.
    terminal.wait_for(
        lambda s: re.search(r"find 'alice': [1-9]\d*/[1-9]", s) is not None and "browsing" in s,
        "a match of 'alice' found and counted, and following stopped",
    )

    terminal.keys("q")
    terminal.wait_for(lambda s: not terminal.alive(), "podtap quitting", timeout=20)
