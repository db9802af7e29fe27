"""Find: what the user typed after ``f``, looked for in an exchange and in lines on screen.

The text is literal (no regex), *smart-case* like the filters: case-insensitive unless it holds
an upper-case letter. ``mentions`` tells whether an exchange holds the text anywhere it can be
shown (request line, headers, bodies decoded as the pane shows them, messages) without
formatting anything; ``first_mentioning`` does so for thousands at once, joining their texts,
so that looking through 100,000 exchanges is a few scans of text.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tui.model.content import decode_body
from tui.model.flows import Exchange, Message, Response

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
        return self.first_mentioning([exchange]) is not None

    def first_mentioning(
        self, exchanges: Sequence[Exchange], texts: FindTexts | None = None
    ) -> int | None:
        """The position of the first of ``exchanges`` that mentions the text, or None.

        Their heads (first lines, headers, trailers; kept in ``texts`` once final) are joined
        into one text and their bodies and messages into one bytes, each looked through in
        one C-level pass: a call per exchange, formatting its parts, costs ten times more."""
        texts = texts if texts is not None else FindTexts(budget=0)
        heads = texts.heads(exchanges)
        head_text = SEPARATOR.join(heads)
        lowered = head_text.lower()
        if not self.folded:
            found = _first_item(head_text, self.key, heads)
        elif len(lowered) == len(head_text):
            found = _first_item(lowered, self.key, heads)
        else:  # a few letters lower-case to two characters (İ): positions moved
            found = _first_item(lowered, self.key, [head.lower() for head in heads])
        if found == 0:
            return found
        # Bodies before the first head that matched: the requests' and the responses' (with
        # messages, the rare WebSocket or gRPC ones) looked through apart, one item each.
        before = exchanges[: len(exchanges) if found is None else found]
        if "\ncontent-encoding:" in lowered:
            requests = [_shown_body(exchange.request) for exchange in before]
            responses = [_response_data(exchange, _shown_body) for exchange in before]
        else:
            requests = [exchange.request.body for exchange in before]
            responses = [
                response.body
                if (response := exchange.response) is not None and not exchange.messages
                else _response_data(exchange, _stored_body)
                for exchange in before
            ]
        for bodies in (requests, responses):
            joined = BYTES_SEPARATOR.join(bodies)
            in_body = _first_item(joined.lower() if self.folded else joined, self.data_key, bodies)
            if in_body is not None and (found is None or in_body < found):
                found = in_body
        return found


TEXTS_BUDGET = 32 * 1024 * 1024
"""Characters of exchange heads that find keeps between looks (about 100,000 exchanges' worth
with a dozen headers each): past it, heads are formatted again at each look."""


class FindTexts:
    """The heads of exchanges (first lines, headers, trailers as ``name: value`` lines) as find
    looks through them, kept once final (the exchange finished, its request complete) so that
    the next look through 100,000 exchanges joins strings instead of formatting them.

    At most ``budget`` characters are kept; ``keep_only`` lets go of exchanges no longer
    listed (evicted from the store)."""

    def __init__(self, budget: int = TEXTS_BUDGET) -> None:
        self.budget = budget
        self.size = 0
        """Characters kept."""
        self._heads: dict[Exchange, tuple[Response | None, str]] = {}

    def __len__(self) -> int:
        return len(self._heads)

    def heads(self, exchanges: Sequence[Exchange]) -> list[str]:
        kept = self._heads.get
        return [
            found[1]
            if (found := kept(exchange)) is not None and found[0] is exchange.response
            else self.head(exchange)
            for exchange in exchanges
        ]

    def head(self, exchange: Exchange) -> str:
        kept = self._heads.get(exchange)
        # A response replaced (h2c: the 101 became informational) makes a new head.
        if kept is not None and kept[0] is exchange.response:
            return kept[1]
        text = _head_text(exchange)
        final = exchange.finished is not None and exchange.request.complete
        if final and self.size + len(text) <= self.budget:
            if kept is not None:
                self.size -= len(kept[1])
            self._heads[exchange] = (exchange.response, text)
            self.size += len(text)
        return text

    def keep_only(self, exchanges: Sequence[Exchange]) -> None:
        """Forget the heads of exchanges not in ``exchanges``."""
        if len(self._heads) <= len(exchanges):
            return
        kept = self._heads
        self._heads = {exchange: kept[exchange] for exchange in exchanges if exchange in kept}
        self.size = sum(len(text) for _, text in self._heads.values())

    def clear(self) -> None:
        self._heads.clear()
        self.size = 0


def _head_text(exchange: Exchange) -> str:
    request = exchange.request
    lines = [f"{request.method} {request.target}", *map(": ".join, request.headers)]
    lines += map(": ".join, request.trailers)
    response = exchange.response
    if response is not None:
        lines.append(f"{response.status} {response.reason}")
        lines += map(": ".join, response.headers)
        lines += map(": ".join, response.trailers)
    return "\n".join(lines)


SEPARATOR = "\x00"
"""Between the texts of two exchanges joined to be looked through: a find text never holds it
(``make_needle`` leaves it out), so no match runs from one exchange into the next."""
BYTES_SEPARATOR = SEPARATOR.encode()


Text = TypeVar("Text", str, bytes)


def _first_item(haystack: Text, key: Text, items: Sequence[Text]) -> int | None:
    """Which of ``items`` (joined with one separator between them into ``haystack``) holds
    the first occurrence of ``key``."""
    position = haystack.find(key)
    if position < 0:
        return None
    starts = itertools.accumulate((len(item) + 1 for item in items), initial=0)
    return bisect.bisect_right(list(starts), position) - 1


def _response_data(exchange: Exchange, body_of: Callable[[Message], bytes]) -> bytes:
    response = exchange.response
    body = b"" if response is None else body_of(response)
    if not exchange.messages:
        return body
    return BYTES_SEPARATOR.join([body, *(message.data for message in exchange.messages)])


def _stored_body(message: Message) -> bytes:
    return message.body


def _shown_body(message: Message) -> bytes:
    """The body as the pane shows it: gzip and the like undone."""
    if message.body and message.header("content-encoding") is not None:
        return decode_body(message).data
    return message.body


def make_needle(text: str) -> Needle | None:
    """The needle for ``text`` (None when there is nothing to look for)."""
    text = text.replace(SEPARATOR, "")[:MAX_NEEDLE]
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
        self,
        exchanges: Sequence[Exchange],
        current: int | None,
        needle: Needle,
        forward: bool,
        texts: FindTexts | None = None,
    ) -> None:
        self.exchanges = exchanges
        self.needle = needle
        self.texts = texts if texts is not None else FindTexts(budget=0)
        self.texts.keep_only(exchanges)
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
        stop = min(self._offset + count, self._last + 1)
        window = self._window(self._offset, stop - self._offset)
        found = self.needle.first_mentioning(window, self.texts)
        if found is not None:
            self.found = (self._current + self._step * (self._offset + found)) % len(self.exchanges)
            self.done = True
            return True
        self._offset = stop
        self.done = stop > self._last
        return self.done

    def _window(self, offset: int, count: int) -> list[Exchange]:
        """The ``count`` exchanges from ``offset`` on, in the order looked at (slices of the
        list, not an index each: 100,000 of those cost more than the looking)."""
        exchanges = self.exchanges
        total = len(exchanges)
        if count <= 0:
            return []
        if self._step > 0:
            first = (self._current + offset) % total
            window = list(exchanges[first : first + count])
            return window + list(exchanges[: count - len(window)])
        last = (self._current - offset) % total
        window = list(exchanges[max(last - count + 1, 0) : last + 1])[::-1]
        if len(window) < count:
            window += list(exchanges[total - (count - len(window)) :])[::-1]
        return window


def next_mentioning(
    exchanges: Sequence[Exchange], current: int | None, needle: Needle, forward: bool
) -> int | None:
    """The index of the next exchange after ``current`` (or before it), going round past
    either end, that mentions ``needle``; None when no other one does."""
    scan = ScanAround(exchanges, current, needle, forward)
    scan.step(len(exchanges))
    return scan.found
