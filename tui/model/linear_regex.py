"""Regexes typed by the user, run in time linear in their input, on bounded input.

Python's ``re`` backtracks: ``^/(\\w+/?)+$`` takes seconds against one long path, and a filter
runs on the UI loop for every exchange. RE2 (google-re2) never backtracks, so a search costs
time proportional to the text; the text itself is cut to :data:`TEXT_LIMIT` (or
:data:`BODY_LIMIT` for bodies), so one exchange costs a bounded amount of work whatever the
pattern and the traffic. The price: no backreferences or lookarounds, which filters do not need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2

CACHED_RESULTS = 4096
"""Texts whose result a pattern remembers: paths and header values repeat across exchanges."""

TEXT_LIMIT = 8_192
"""Characters of a path, host, header or source a pattern looks at."""

BODY_LIMIT = 65_536
"""Bytes of a body ``~b`` looks at."""

MESSAGES_LIMIT = 4 * BODY_LIMIT
"""Bytes of an exchange's WebSocket or gRPC messages ``~b`` looks at, over all of them."""


class RegexError(ValueError):
    """A pattern RE2 cannot compile; the message says why, in RE2's words."""


class LinearRegex:
    """A compiled pattern; ``search``/``fullmatch`` take str or bytes (bytes as UTF-8)."""

    __slots__ = ("_found", "_limit", "_match", "_whole", "pattern")

    def __init__(self, pattern: str, *, ignore_case: bool = False, limit: int = TEXT_LIMIT) -> None:
        options = re2.Options()
        # RE2 would print its own complaint on stderr, under the app's screen.
        options.log_errors = False
        options.case_sensitive = not ignore_case
        options.never_capture = True  # only "does it match" is asked
        try:
            compiled: Any = re2.compile(pattern.encode("utf-8", "surrogatepass"), options)
        except re2.error as error:
            raise RegexError(_reason(error)) from None
        # RE2's own matcher, below the module's Python layer (which builds match objects and
        # costs twice as much per call); the public API where a version lacks it.
        self._match, self._whole = _matchers(compiled)
        self._found: dict[tuple[bool, str | bytes], bool] = {}
        self._limit = limit
        self.pattern = pattern

    def search(self, text: str | bytes) -> bool:
        return self._cached(text, False)

    def fullmatch(self, text: str | bytes) -> bool:
        return self._cached(text, True)

    def _cached(self, text: str | bytes, whole: bool) -> bool:
        if len(text) > 256:  # long texts (bodies) are rarely seen twice: not worth keeping
            return (self._whole if whole else self._match)(self._bounded(text))
        key = (whole, text)
        found = self._found.get(key)
        if found is None:
            if len(self._found) >= CACHED_RESULTS:
                self._found.clear()
            found = self._found[key] = (self._whole if whole else self._match)(self._bounded(text))
        return found

    def _bounded(self, text: str | bytes) -> bytes:
        if isinstance(text, str):
            text = text[: self._limit].encode("utf-8", "surrogatepass")
        return text[: self._limit]


Matcher = Callable[[bytes], bool]


def _matchers(compiled: Any) -> tuple[Matcher, Matcher]:
    """(search, fullmatch) of a compiled pattern. RE2's own matcher is called below the
    module's Python layer, which builds match objects and costs twice as much per call; the
    public API serves where a version lacks it."""
    engine = getattr(compiled, "_regexp", None)
    anchors = getattr(re2, "_Anchor", None)
    if engine is None or anchors is None:
        return (
            lambda text: compiled.search(text) is not None,
            lambda text: compiled.fullmatch(text) is not None,
        )
    match = engine.Match
    unanchored, both = anchors.UNANCHORED, anchors.ANCHOR_BOTH

    def search(text: bytes) -> bool:
        return bool(match(unanchored, text, 0, len(text))[0][0] >= 0)

    def fullmatch(text: bytes) -> bool:
        return bool(match(both, text, 0, len(text))[0][0] >= 0)

    return search, fullmatch


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
