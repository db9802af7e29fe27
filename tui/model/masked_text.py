"""A big text body with its secrets masked a chunk at a time, for the detail pane.

Masking 10 MB of text full of secret-like names takes seconds (a handful of regular expressions
with a call back per match). The pane needs only its first screenful to open: ``MaskedText``
masks the first chunk when made and the rest as ``advance`` is called (between frames), and
holds rows of masked text only, so nothing unmasked is ever shown; rows grow as it goes.

Chunks end at line ends where no masking rule can run from one chunk into the next: the rules
keep to a line, except a JSON member (a quoted name, a colon, a value), which may span lines,
so a cut is not made where a quote is left open, or next to a colon.
"""

from __future__ import annotations

import bisect
import json
import re

from tui.model.bodies import FORMAT_LIMIT, BodyMode, auto_mode, human_size
from tui.model.secrets import mask_text
from tui.model.text_lines import MAX_MATCHES, Line, RowSequence, WrappedText

FIRST_CHUNK = 16 * 1024
"""Characters masked before the body is first shown: a screenful or two."""
CHUNK = 64 * 1024
"""Characters masked by one ``advance`` (tens of milliseconds at worst)."""

_ESCAPED = re.compile(r"\\.", re.DOTALL)


def lazily_masked(body: bytes, content_type: str, mode: str) -> str | None:
    """The text of ``body`` when it is to be masked a chunk at a time: a body past
    ``FORMAT_LIMIT`` (shown as text, not formatted) that ``mask_body`` would mask as free
    text; None when masking it whole is the way (small, binary, a form, one JSON document, or
    the hex view). The caller checked that it could hold secrets (``could_hold_secrets``)."""
    if mode == "hex" or len(body) <= FORMAT_LIMIT:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    sample = text[:4096]
    if sum(1 for ch in sample if ch.isprintable() or ch in "\r\n\t") < 0.95 * len(sample):
        return None  # shown as hex
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return None
    if "json" in kind:
        try:
            json.loads(text)
        except ValueError:
            pass  # not one document (JSON lines, a cut body): masked as free text
        else:
            return None
    return text


def not_formatted_note(body: bytes, content_type: str, mode: BodyMode) -> str:
    """What the pane says of a big body shown as text in view ``mode`` (as ``render_body``)."""
    if mode == "auto":
        mode = auto_mode(body, content_type)
    return "" if mode == "text" else f"larger than {human_size(FORMAT_LIMIT)}: not formatted"


class MaskedText(RowSequence):
    """``text`` wrapped at ``width`` like ``WrappedText``, its secrets masked, made a chunk at
    a time: only rows of chunks already masked exist."""

    def __init__(self, text: str, width: int, style: str = "") -> None:
        self._text = text
        self._width = width
        self._style = style
        self._position = 0
        """Characters of ``text`` masked so far."""
        self._chunks: list[WrappedText] = []
        self._first_rows: list[int] = [0]
        self.advance(FIRST_CHUNK)

    @property
    def done(self) -> bool:
        return self._position >= len(self._text)

    @property
    def progress(self) -> float:
        return self._position / max(len(self._text), 1)

    def advance(self, size: int = CHUNK) -> bool:
        """Mask the next chunk of about ``size`` characters; True once all is masked."""
        if self.done:
            return True
        end = chunk_end(self._text, self._position, size)
        masked = mask_text(self._text[self._position : end])
        self._position = end
        chunk = WrappedText(masked, self._width, self._style)
        self._chunks.append(chunk)
        self._first_rows.append(self._first_rows[-1] + len(chunk))
        return self.done

    def __len__(self) -> int:
        return self._first_rows[-1]

    def row(self, index: int) -> Line:
        chunk = bisect.bisect_right(self._first_rows, index) - 1
        return self._chunks[chunk].row(index - self._first_rows[chunk])

    def find(self, pattern: re.Pattern[str]) -> list[tuple[int, int, int]]:
        found: list[tuple[int, int, int]] = []
        for chunk, first in zip(self._chunks, self._first_rows, strict=False):
            found += [(first + row, start, end) for row, start, end in chunk.find(pattern)]
            if len(found) >= MAX_MATCHES:
                break
        return found[:MAX_MATCHES]

    def find_text(self, key: str, folded: bool) -> list[tuple[int, int, int]] | None:
        """As ``WrappedText.find_text``, through the chunks masked so far."""
        found: list[tuple[int, int, int]] = []
        for chunk, first in zip(self._chunks, self._first_rows, strict=False):
            here = chunk.find_text(key, folded)
            if here is None:
                return None
            found += [(first + row, start, end) for row, start, end in here]
            if len(found) >= MAX_MATCHES:
                break
        return found[:MAX_MATCHES]


def chunk_end(text: str, start: int, size: int) -> int:
    """Where a chunk of about ``size`` characters from ``start`` ends: after a line end past
    ``start + size`` that no JSON member runs across (the end of ``text`` if none): the chunk
    leaves no quote open, and neither the line before nor the text after is at a colon."""
    quotes = 0
    counted = start
    position = start + size
    while True:
        cut = text.find("\n", position)
        if cut < 0:
            return len(text)
        quotes += _ESCAPED.sub("", text[counted:cut]).count('"')
        counted = cut
        position = cut + 1
        if (
            quotes % 2 == 0
            and not text[text.rfind("\n", start, cut) + 1 : cut].rstrip(" \t\r").endswith(":")
            and _COLON_NEXT.match(text, cut) is None
        ):
            return cut + 1


_COLON_NEXT = re.compile(r"\s*:")
