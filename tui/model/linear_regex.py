"""Regexes typed by the user, run in time linear in their input, on bounded input.

Python's ``re`` backtracks: ``^/(\\w+/?)+$`` takes seconds against one long path, and a filter
runs on the UI loop for every exchange. RE2 (google-re2) never backtracks, so a search costs
time proportional to the text; the text itself is cut to :data:`TEXT_LIMIT` (or
:data:`BODY_LIMIT` for bodies), so one exchange costs a bounded amount of work whatever the
pattern and the traffic. The price: no backreferences or lookarounds, which filters do not need.
"""

from __future__ import annotations

from typing import Any

import re2

TEXT_LIMIT = 8_192
"""Characters of a path, host, header or source a pattern looks at."""

BODY_LIMIT = 65_536
"""Bytes of a body ``~b`` looks at."""


class RegexError(ValueError):
    """A pattern RE2 cannot compile; the message says why, in RE2's words."""


class LinearRegex:
    """A compiled pattern; ``search``/``fullmatch`` take str or bytes (bytes as UTF-8)."""

    __slots__ = ("_compiled", "_limit", "pattern")

    def __init__(self, pattern: str, *, ignore_case: bool = False, limit: int = TEXT_LIMIT) -> None:
        options = re2.Options()
        # RE2 would print its own complaint on stderr, under the app's screen.
        options.log_errors = False
        options.case_sensitive = not ignore_case
        try:
            self._compiled: Any = re2.compile(pattern.encode("utf-8", "surrogatepass"), options)
        except re2.error as error:
            raise RegexError(_reason(error)) from None
        self._limit = limit
        self.pattern = pattern

    def search(self, text: str | bytes) -> bool:
        return self._compiled.search(self._bounded(text)) is not None

    def fullmatch(self, text: str | bytes) -> bool:
        return self._compiled.fullmatch(self._bounded(text)) is not None

    def _bounded(self, text: str | bytes) -> bytes:
        if isinstance(text, str):
            text = text[: self._limit].encode("utf-8", "surrogatepass")
        return text[: self._limit]


def _reason(error: Exception) -> str:
    detail = error.args[0] if error.args else ""
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    text = str(detail) or "not a valid regex"
    if "invalid escape sequence: \\" in text and text[-1:].isdigit():
        text += " (backreferences are not supported)"
    elif "invalid perl operator: (?" in text:
        text += " (lookarounds are not supported)"
    return text
