"""Find: what the user typed after ``f``, looked for in an exchange and in lines on screen.

The text is literal (no regex), *smart-case* like the filters: case-insensitive unless it holds
an upper-case letter. ``mentions`` tells whether an exchange holds the text anywhere it can be
shown (request line, headers, bodies decoded as the pane shows them, messages) without
formatting anything, so that looking through 100,000 exchanges is a scan of text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tui.model.content import decode_body
from tui.model.flows import Exchange, Message

MAX_NEEDLE = 200
"""Characters of a find text kept (a pasted page is not something to look for)."""


@dataclass(frozen=True, slots=True)
class Needle:
    text: str
    pattern: re.Pattern[str]
    """Where the text is, in lines on screen (smart-case)."""
    folded: bool
    """Case-insensitive: haystacks are lower-cased before looking (cheaper than a regex)."""
    key: str
    data_key: bytes
    """The key as UTF-8 bytes, for bodies (case folding is ASCII-only there)."""

    def mentions(self, exchange: Exchange) -> bool:
        # Plain substring tests of C-level joins and lower-casing: a few microseconds an
        # exchange, where a case-insensitive regex costs several times more.
        request = exchange.request
        if self._in_message(f"{request.method} {request.target}", request):
            return True
        response = exchange.response
        if response is not None and self._in_message(
            f"{response.status} {response.reason}", response
        ):
            return True
        return any(self._in_data(message.data) for message in exchange.messages)

    def _in_message(self, first_line: str, message: Message) -> bool:
        head = _head(first_line, message)
        lowered = head.lower()
        if self.key in (lowered if self.folded else head):
            return True
        body = message.body
        if "\ncontent-encoding:" in lowered:
            body = decode_body(message).data  # as the pane shows it: gzip and the like undone
        return self._in_data(body)

    def _in_text(self, text: str) -> bool:
        return self.key in (text.lower() if self.folded else text)

    def _in_data(self, data: bytes) -> bool:
        return self.data_key in (data.lower() if self.folded else data)


def _head(first_line: str, message: Message) -> str:
    """The first line, headers and trailers as ``name: value`` lines."""
    lines = "\n".join(map(": ".join, message.headers))
    if message.trailers:
        lines += "\n" + "\n".join(map(": ".join, message.trailers))
    return f"{first_line}\n{lines}"


def make_needle(text: str) -> Needle | None:
    """The needle for ``text`` (None when there is nothing to look for)."""
    text = text[:MAX_NEEDLE]
    if not text:
        return None
    folded = not any(ch.isupper() for ch in text)
    key = text.lower() if folded else text
    flags = re.IGNORECASE if folded else 0
    return Needle(text, re.compile(re.escape(text), flags), folded, key, key.encode("utf-8"))


def next_index(count: int, current: int | None, forward: bool) -> int | None:
    """The match after (or before) ``current`` among ``count``, or None past either end."""
    if count == 0:
        return None
    if current is None:
        return 0 if forward else count - 1
    step = current + (1 if forward else -1)
    return step if 0 <= step < count else None


class ScanAround:
    """Looks for the next exchange after ``current`` (or before it, going back), round past
    either end, that mentions ``needle``: a slice at a time, so that a long list is looked
    through between keystrokes and frames rather than in one go."""

    def __init__(
        self, exchanges: Sequence[Exchange], current: int | None, needle: Needle, forward: bool
    ) -> None:
        self.exchanges = exchanges
        self.needle = needle
        count = len(exchanges)
        self._current = (-1 if forward else count) if current is None else current
        self.forward = forward
        self._step = 1 if forward else -1
        self._offset = 1
        self._last = count if current is None else count - 1
        """Offsets to look at: every other exchange (and with no current one, all)."""
        self.found: int | None = None
        self.done = count == 0

    @property
    def progress(self) -> float:
        """The share of the list looked through, 0 to 1."""
        return 1.0 if self.done else (self._offset - 1) / max(self._last, 1)

    def step(self, count: int) -> bool:
        """Look at up to ``count`` more exchanges; True once done (``found`` says where)."""
        exchanges = self.exchanges
        total = len(exchanges)
        mentions = self.needle.mentions
        stop = min(self._offset + count, self._last + 1)
        for offset in range(self._offset, stop):
            index = (self._current + self._step * offset) % total
            if mentions(exchanges[index]):
                self.found = index
                self.done = True
                return True
        self._offset = stop
        self.done = stop > self._last
        return self.done


def next_mentioning(
    exchanges: Sequence[Exchange], current: int | None, needle: Needle, forward: bool
) -> int | None:
    """The index of the next exchange after ``current`` (or before it), going round past
    either end, that mentions ``needle``; None when no other one does."""
    scan = ScanAround(exchanges, current, needle, forward)
    scan.step(len(exchanges))
    return scan.found
