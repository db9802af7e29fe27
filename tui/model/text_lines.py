"""Lines of styled text as a body view hands them to the screen, and the two kinds that are
computed only when drawn: a text wrapped at the pane's width, and a hex dump.

A line is a tuple of spans ``(text, rich style name)``. A 10 MB body is 150,000 wrapped lines
or 650,000 hex rows: building them all would stall the screen, so these sequences index where
rows start and make a row when it is asked for (only the rows on screen are).
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator, Sequence
from typing import overload

from tui.model.terminal_text import one_line

Span = tuple[str, str]
Line = tuple[Span, ...]


def safe(text: str) -> str:
    """One row of ``text`` for a terminal: control characters escaped as everywhere in podtap
    (``\\x1b``), a tab shown as one space (so that rows keep their width)."""
    return one_line(text.replace("\t", " "))


def plain(line: Line) -> str:
    return "".join(text for text, _style in line)


MAX_MATCHES = 10_000
"""Matches counted in one find; more are not marked (the count says "10000+")."""


class RowSequence(Sequence[Line]):
    """A sequence of lines made on demand; subclasses say how many and how to make one."""

    def row(self, index: int) -> Line:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> Line: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Line]: ...
    def __getitem__(self, index: int | slice) -> Line | Sequence[Line]:
        if isinstance(index, slice):
            return [self.row(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.row(index)

    def __iter__(self) -> Iterator[Line]:
        return (self.row(i) for i in range(len(self)))

    def find(self, pattern: re.Pattern[str]) -> list[tuple[int, int, int]]:
        """Every match as (row, start, end) in that row's text."""
        found: list[tuple[int, int, int]] = []
        for index in range(len(self)):
            text = plain(self.row(index))
            found += [
                (index, m.start(), m.end()) for m in pattern.finditer(text) if m.end() > m.start()
            ]
            if len(found) >= MAX_MATCHES:
                break
        return found[:MAX_MATCHES]


class WrappedText(RowSequence):
    """``text`` split at its line ends and cut every ``width`` characters.

    Only C-level passes over the text when made (split, lengths, a maximum): 10 MB of text
    takes a few tens of milliseconds. Rows are mapped to lines by arithmetic when no line is
    wider than ``width`` (the common case), else through the running count of rows.
    """

    def __init__(self, text: str, width: int, style: str = "") -> None:
        self._width = max(width, 1)
        self._style = style
        self._text = text.replace("\r\n", "\n")
        lines = self._text.split("\n")
        if len(lines) > 1 and not lines[-1]:
            lines.pop()  # a final line end closes the last line; it does not open a new one
        self._lines = lines
        self._lengths = list(map(len, lines))
        self._first_row: list[int] | None = None
        if max(self._lengths, default=0) > self._width:
            w = self._width
            rows = (max(1, -(-length // w)) for length in self._lengths)
            self._first_row = list(itertools.accumulate(rows, initial=0))
        self._starts: list[int] | None = None

    def __len__(self) -> int:
        return len(self._lines) if self._first_row is None else self._first_row[-1]

    def _locate(self, index: int) -> tuple[int, int]:
        """(line, offset in the line) of row ``index``."""
        if self._first_row is None:
            return index, 0
        line = bisect.bisect_right(self._first_row, index) - 1
        return line, (index - self._first_row[line]) * self._width

    def row(self, index: int) -> Line:
        line, start = self._locate(index)
        return ((safe(self._lines[line][start : start + self._width]), self._style),)

    def find(self, pattern: re.Pattern[str]) -> list[tuple[int, int, int]]:
        found: list[tuple[int, int, int]] = []
        for match in pattern.finditer(self._text):
            if match.end() > match.start():
                found.append(self._place(match.start(), match.end() - match.start()))
                if len(found) >= MAX_MATCHES:
                    break
        return found

    def find_text(self, key: str, folded: bool) -> list[tuple[int, int, int]] | None:
        """Every occurrence of the literal ``key`` (``folded``: in the lower-cased text), as
        ``find`` gives them: a C-level search, several times faster than a case-insensitive
        regex through megabytes. None when lower-casing moves positions (a few non-ASCII
        letters): ``find`` with a pattern is then the way."""
        text = self._text
        haystack = text.lower() if folded else text
        if len(haystack) != len(text) or not key:
            return None
        found: list[tuple[int, int, int]] = []
        position = haystack.find(key)
        while position >= 0 and len(found) < MAX_MATCHES:
            found.append(self._place(position, len(key)))
            position = haystack.find(key, position + len(key))
        return found

    def _place(self, position: int, length: int) -> tuple[int, int, int]:
        """(row, start, end) of ``length`` characters at ``position`` in the text."""
        if self._starts is None:
            # Where each line starts in the text: made on the first find only.
            self._starts = list(itertools.accumulate(map((1).__add__, self._lengths), initial=0))
        line = bisect.bisect_right(self._starts, position) - 1
        offset = position - self._starts[line]
        row = line if self._first_row is None else self._first_row[line]
        row += offset // self._width
        start = offset % self._width
        return (row, start, min(start + length, self._width))


HEX_ASCII_COLUMN = 59
"""Where the printable column of a 16-byte hex row starts: offset (8) + 2 + 16 * 3 - 1 + 2."""


class HexDump(RowSequence):
    """Offset, hex pairs and the printable characters: 16 bytes a row, or fewer (a multiple
    of 4) when ``width`` is narrower than such a row (75 characters)."""

    def __init__(self, data: bytes, width: int = 80) -> None:
        self._data = data
        self.per_row = max(4, min(16, (width - 11) // 4 // 4 * 4))
        self.ascii_column = 11 + 3 * self.per_row

    def __len__(self) -> int:
        return max(1, -(-len(self._data) // self.per_row))

    def row(self, index: int) -> Line:
        per_row = self.per_row
        chunk = self._data[index * per_row : index * per_row + per_row]
        hex_part = chunk.hex(" ").ljust(per_row * 3 - 1)
        printable = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        return ((f"{index * per_row:08x}  ", "dim"), (f"{hex_part}  ", ""), (printable, "cyan"))

    def find(self, pattern: re.Pattern[str]) -> list[tuple[int, int, int]]:
        # Matches are looked for in the bytes (as Latin-1 text) and shown in the printable
        # column; one that runs past a row's end is marked up to that end.
        found: list[tuple[int, int, int]] = []
        for match in pattern.finditer(self._data.decode("latin-1")):
            if match.end() == match.start():
                continue
            row, column = divmod(match.start(), self.per_row)
            start = self.ascii_column + column
            end = min(start + match.end() - match.start(), self.ascii_column + self.per_row)
            found.append((row, start, end))
            if len(found) >= MAX_MATCHES:
                break
        return found


def wrap(lines: Sequence[Line], width: int) -> list[Line]:
    """Cut lines longer than ``width`` characters into several (styles kept)."""
    width = max(width, 1)
    out: list[Line] = []
    for line in lines:
        if sum(len(text) for text, _ in line) <= width:
            out.append(line)
            continue
        row: list[Span] = []
        room = width
        for text, style in line:
            while text:
                part, text = text[:room], text[room:]
                row.append((part, style))
                room -= len(part)
                if room == 0:
                    out.append(tuple(row))
                    row, room = [], width
        if row:
            out.append(tuple(row))
    return out
