"""Find: what the user typed after ``f``, looked for in an exchange and in lines on screen.

The text is literal (no regex), *smart-case* like the filters: case-insensitive unless it holds
an upper-case letter. ``mentions`` tells whether an exchange holds the text anywhere it can be
shown (request line, headers, bodies, messages) without formatting anything, so that looking
through 100,000 exchanges for the next one that matches is a scan of bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tui.model.flows import Exchange, Message

MAX_NEEDLE = 200
"""Characters of a find text kept (a pasted page is not something to look for)."""


@dataclass(frozen=True, slots=True)
class Needle:
    text: str
    pattern: re.Pattern[str]
    data_pattern: re.Pattern[bytes]
    """The same text for bodies, as UTF-8 bytes (case folding is ASCII-only there)."""

    def mentions(self, exchange: Exchange) -> bool:
        request = exchange.request
        if self.pattern.search(f"{request.method} {request.target}"):
            return True
        if self._in_message(request):
            return True
        response = exchange.response
        if response is not None and (
            self.pattern.search(f"{response.status} {response.reason}")
            or self._in_message(response)
        ):
            return True
        return any(self.data_pattern.search(message.data) for message in exchange.messages)

    def _in_message(self, message: Message) -> bool:
        search = self.pattern.search
        for name, value in message.headers:
            if search(name) or search(value) or search(f"{name}: {value}"):
                return True
        for name, value in message.trailers:
            if search(f"{name}: {value}"):
                return True
        return self.data_pattern.search(message.body) is not None


def make_needle(text: str) -> Needle | None:
    """The needle for ``text`` (None when there is nothing to look for)."""
    text = text[:MAX_NEEDLE]
    if not text:
        return None
    flags = 0 if any(ch.isupper() for ch in text) else re.IGNORECASE
    return Needle(
        text,
        re.compile(re.escape(text), flags),
        re.compile(re.escape(text.encode("utf-8")), flags),
    )


def next_index(count: int, current: int | None, forward: bool) -> int | None:
    """The match after (or before) ``current`` among ``count``, or None past either end."""
    if count == 0:
        return None
    if current is None:
        return 0 if forward else count - 1
    step = current + (1 if forward else -1)
    return step if 0 <= step < count else None


def next_mentioning(
    exchanges: Sequence[Exchange], current: int | None, needle: Needle, forward: bool
) -> int | None:
    """The index of the next exchange after ``current`` (or before it), going round past
    either end, that mentions ``needle``; None when no other one does."""
    count = len(exchanges)
    if current is None:
        current = -1 if forward else count
    step = 1 if forward else -1
    for offset in range(1, count + 1):
        index = (current + step * offset) % count
        if index != current and needle.mentions(exchanges[index]):
            return index
    return None
