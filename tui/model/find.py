"""Find: what the user typed after ``f``, looked for in an exchange and in lines on screen.

The text is literal (no regex), *smart-case* like the filters: case-insensitive unless it holds
an upper-case letter. ``mentions`` tells whether an exchange shows the text (request line,
headers, bodies decoded as the pane shows them, messages; secrets masked as the pane masks
them, unless revealed: find never lands on a hidden secret); ``first_mentioning`` does so for
thousands at once, joining their texts, so that looking through 100,000 exchanges is a few
scans of text.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from tui.model.flows import Exchange, Response
from tui.model.shown_text import exchange_parts

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
    """The key as UTF-8, as looked for (case folding is Unicode's in heads and messages,
    ASCII-only in bodies)."""

    def mentions(self, exchange: Exchange, *, reveal: bool = False) -> bool:
        """Whether ``exchange`` shows the text (secrets masked unless ``reveal``)."""
        return self.first_mentioning([exchange], FindTexts(reveal=reveal, budget=0)) is not None

    def first_mentioning(
        self, exchanges: Sequence[Exchange], texts: FindTexts | None = None
    ) -> int | None:
        """The position of the first of ``exchanges`` that mentions the text, or None.

        Their heads and messages (kept in ``texts`` once final) are joined into one bytes and
        their bodies into another, each looked through in one C-level pass: a call per
        exchange costs ten times more."""
        texts = texts if texts is not None else FindTexts(budget=0)
        heads, bodies = texts.columns(exchanges, self.folded)
        found = _first_item(BYTES_SEPARATOR.join(heads), self.data_key, heads)
        if found == 0:
            return found
        # Bodies before the first head that matched.
        if found is not None:
            bodies = bodies[:found]
        joined = BYTES_SEPARATOR.join(bodies)
        in_body = _first_item(joined.lower() if self.folded else joined, self.data_key, bodies)
        if in_body is not None and (found is None or in_body < found):
            found = in_body
        return found


TEXTS_BUDGET = 64 * 1024 * 1024
"""Bytes of texts (and of bodies made anew by masking or decompressing) that find keeps between
looks, well over 100,000 exchanges' worth: past it, texts are made again at each look."""

Parts = tuple[bytes, bytes, bytes]
"""An exchange as find sees it: its head and messages as UTF-8, the same lower-cased (with
Unicode's rules, once, not at every look), its bodies. Bytes, not text: a mask makes a text
non-ASCII, two bytes a character, slower to join and to look through."""


class FindTexts:
    """The exchanges as the pane shows them (``shown_text.exchange_parts``: masked unless
    ``reveal``), kept once final (the exchange finished, its request complete) so that the
    next look through 100,000 exchanges joins strings instead of masking and formatting them.
    ``warm`` makes them ahead of the first look, a slice at a time.

    At most ``budget`` bytes are kept; ``keep_only`` lets go of exchanges no longer
    listed (evicted from the store)."""

    def __init__(self, budget: int = TEXTS_BUDGET, *, reveal: bool = False) -> None:
        self.budget = budget
        self.reveal = reveal
        self.size = 0
        """Bytes kept."""
        self._kept: dict[Exchange, tuple[Response | None, int, bytes, bytes, bytes]] = {}
        """Per exchange, its response and message count when made (either changing makes
        them anew: h2c's 101 becomes informational, messages come after the 101), then
        its parts."""

    def __len__(self) -> int:
        return len(self._kept)

    def show_secrets(self, reveal: bool) -> None:
        """Secrets are shown (or masked) from now on: the texts kept no longer are what the
        pane shows."""
        if reveal != self.reveal:
            self.reveal = reveal
            self.clear()

    def columns(
        self, exchanges: Sequence[Exchange], folded: bool
    ) -> tuple[list[bytes], list[bytes]]:
        """The heads (lower-cased when ``folded``) and the bodies of ``exchanges``.

        When every one is kept and still current (the common case, once warm), the lists are
        made by C-level passes (``map``): a Python step per exchange is most of the time a
        look through 100,000 of them takes."""
        kept = list(map(self._kept.get, exchanges))
        if None not in kept:
            entries = cast(list[tuple[Response | None, int, bytes, bytes, bytes]], kept)
            responses = map(_RESPONSE, exchanges)
            counts = map(len, map(_MESSAGES, exchanges))
            if all(map(operator.is_, responses, map(_KEPT_RESPONSE, entries))) and all(
                map(operator.eq, counts, map(_KEPT_COUNT, entries))
            ):
                heads = list(map(_KEPT_LOWERED if folded else _KEPT_HEAD, entries))
                return heads, list(map(_KEPT_BODIES, entries))
        parts = list(map(self.exchange_parts, exchanges))
        heads = [lowered if folded else head for head, lowered, _ in parts]
        return heads, [bodies for _, _, bodies in parts]

    def exchange_parts(self, exchange: Exchange) -> Parts:
        kept = self._kept.get(exchange)
        # A response replaced (h2c: the 101 became informational), or messages that came
        # since, make new parts.
        count = len(exchange.messages)
        if kept is not None and kept[0] is exchange.response and kept[1] == count:
            return kept[2:]
        head, bodies = exchange_parts(exchange, self.reveal)
        parts = (head.encode(), head.lower().encode(), bodies)
        size = _size(exchange, parts)
        final = exchange.finished is not None and exchange.request.complete
        if final and self.size + size <= self.budget:
            if kept is not None:
                self.size -= _size(exchange, kept[2:])
            self._kept[exchange] = (exchange.response, count, *parts)
            self.size += size
        return parts

    def warm(self, exchanges: Sequence[Exchange], start: int, count: int) -> int:
        """Make the parts of ``exchanges[start : start + count]`` not kept yet, skipping bodies
        too big to mask in one go (a look masks them if it gets there); the position to go on
        from (``len(exchanges)`` once through)."""
        kept = self._kept
        stop = min(start + count, len(exchanges))
        for exchange in exchanges[start:stop]:
            if exchange not in kept and _body_size(exchange) <= WARM_BODY_LIMIT:
                self.exchange_parts(exchange)
            if self.size >= self.budget:
                return len(exchanges)
        return stop

    def keep_only(self, exchanges: Sequence[Exchange]) -> None:
        """Forget the texts of exchanges not in ``exchanges``."""
        if len(self._kept) <= len(exchanges):
            return
        kept = self._kept
        self._kept = {exchange: kept[exchange] for exchange in exchanges if exchange in kept}
        self.size = sum(_size(exchange, entry[2:]) for exchange, entry in self._kept.items())

    def clear(self) -> None:
        self._kept.clear()
        self.size = 0


WARM_BODY_LIMIT = 1024 * 1024
"""Body bytes past which ``warm`` leaves an exchange to the look itself: masking megabytes of
text full of secret-like names takes seconds, and typing must not wait for it."""


def _body_size(exchange: Exchange) -> int:
    response = exchange.response
    return len(exchange.request.body) + (0 if response is None else len(response.body))


def _size(exchange: Exchange, parts: Parts) -> int:
    """What keeping ``parts`` costs beyond the exchange itself: the head, and the bodies
    when they are new bytes (masked, decompressed, joined), not the stored ones."""
    head, lowered, bodies = parts
    response = exchange.response
    stored = bodies is exchange.request.body or (response is not None and bodies is response.body)
    return len(head) + len(lowered) + (0 if stored else len(bodies))


_RESPONSE = operator.attrgetter("response")
_MESSAGES = operator.attrgetter("messages")
_KEPT_RESPONSE = operator.itemgetter(0)
_KEPT_COUNT = operator.itemgetter(1)
_KEPT_HEAD = operator.itemgetter(2)
_KEPT_LOWERED = operator.itemgetter(3)
_KEPT_BODIES = operator.itemgetter(4)


SEPARATOR = "\x00"
"""Between the texts of two exchanges joined to be looked through: a find text never holds it
(``make_needle`` leaves it out), so no match runs from one exchange into the next."""
BYTES_SEPARATOR = SEPARATOR.encode()


def _first_item(haystack: bytes, key: bytes, items: Sequence[bytes]) -> int | None:
    """Which of ``items`` (joined with one separator between them into ``haystack``) holds
    the first occurrence of ``key``."""
    position = haystack.find(key)
    if position < 0:
        return None
    starts = itertools.accumulate((len(item) + 1 for item in items), initial=0)
    return bisect.bisect_right(list(starts), position) - 1


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
