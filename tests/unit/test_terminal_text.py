"""Terminal-safe text: every control character a stranger could send is shown, not obeyed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui.model.terminal_text import one_line, terminal_safe

pytestmark = pytest.mark.timeout(30)

OSC52 = "\x1b]52;c;cGF5bG9hZA==\x1b\\"
"""Writes "payload" to the clipboard of a terminal that obeys it."""
OSC0 = "\x1b]0;pwned\x07"
"""Retitles the window."""


def test_osc52_and_osc0_are_escaped() -> None:
    assert terminal_safe(f"a{OSC52}b") == "a\\x1b]52;c;cGF5bG9hZA==\\x1b\\b"
    assert terminal_safe(OSC0) == "\\x1b]0;pwned\\x07"


def test_c1_del_and_bidi_overrides_are_escaped() -> None:
    assert terminal_safe("\x9b31m\x7f") == "\\x9b31m\\x7f"
    assert terminal_safe("user\u202egnp.exe") == "user\\u202egnp.exe"


def test_lines_tabs_and_crlf_stay_but_a_lone_carriage_return_does_not() -> None:
    assert terminal_safe("GET / HTTP/1.1\r\nHost: a\tb\n") == "GET / HTTP/1.1\r\nHost: a\tb\n"
    # A bare CR moves back to the start of the line: what follows would hide what came before.
    assert terminal_safe("visible\rhidden") == "visible\\x0dhidden"


def test_one_line_escapes_line_breaks_too() -> None:
    assert one_line("a\r\nb\tc") == "a\\x0d\\x0ab\\x09c"


def test_bytes_kept_by_surrogateescape_show_as_the_byte() -> None:
    raw = b"\x9b2J".decode("utf-8", "surrogateescape")
    assert terminal_safe(raw) == "\\x9b2J"
    assert one_line(raw).encode("utf-8", "surrogateescape") == b"\\x9b2J"


def test_plain_text_is_returned_as_is() -> None:
    text = "GET /api/users?id=7 — ok ✓"
    assert terminal_safe(text) is text
    assert one_line(text) is text


@given(st.text())
def test_nothing_that_drives_a_terminal_is_left(text: str) -> None:
    for shown in (terminal_safe(text), one_line(text)):
        for char in shown:
            code = ord(char)
            assert code >= 0x20 or char in "\t\n\r", repr(shown)
            assert not 0x7F <= code <= 0x9F
            assert not 0xD800 <= code <= 0xDFFF
        assert "\r" not in shown.replace("\r\n", "")
    assert "\n" not in one_line(text)
    assert "\t" not in one_line(text)
