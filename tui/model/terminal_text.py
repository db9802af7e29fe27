"""Text from the network or a file, made safe to put on a terminal.

Bytes a stranger sent must never drive the user's terminal: an OSC 52 sequence writes the
clipboard, OSC 0 retitles the window, OSC 8 makes fake links, CSI moves the cursor and hides
text. Every control character (C0 but tab and newline, DEL, C1) is shown as ``\\x1b``; so are
the Unicode bidi overrides (text that reads differently from what it is) and lone surrogates,
which ``surrogateescape`` would write back as raw 8-bit C1 bytes.
"""

from __future__ import annotations

import re

# C0 (without tab and newline; a carriage return only where it does not end a line), DEL, C1,
# bidi embeddings/overrides/isolates, and the surrogates of undecodable bytes.
_MULTILINE = re.compile(
    "\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
# One line (a table cell, a header value): line breaks and tabs are escaped too.
_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        # A byte that was not UTF-8, kept by surrogateescape: show the byte itself.
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """``text`` with control characters escaped; tabs, newlines and CRLF line ends kept."""
    if _MULTILINE.search(text) is None:
        return text
    return _MULTILINE.sub(_escaped, text)


def one_line(text: str) -> str:
    """``text`` with every control character escaped, line breaks and tabs included."""
    if _ONE_LINE.search(text) is None:
        return text
    return _ONE_LINE.sub(_escaped, text)
