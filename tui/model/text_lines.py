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

Span = tuple[str, str]
Line = tuple[Span, ...]

_NEWLINE = re.compile(r"\r?\n")

# C0 and C1 controls (and DEL) would drive the terminal: show them as a replacement character.
# A tab becomes one space so that wrapping by characters stays true to widths.
_SAFE = {code: "\ufffd" for code in itertools.chain(range(32), range(127, 160))}
_SAFE[ord("\t")] = " "


def safe(text: str) -> str:
    """``text`` with control characters made harmless for a terminal."""
    return text.translate(_SAFE)


def plain(line: Line) -> str:
    return "".join(text for text, _style in line)


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
        return found


class WrappedText(RowSequence):
    """``text`` split at its line ends and cut every ``width`` characters."""

    def __init__(self, text: str, width: int, style: str = "") -> None:
        self._text = text
        self._width = max(width, 1)
        self._style = style
        ends = [m.start() for m in _NEWLINE.finditer(text)]
        self._starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]
        self._ends = [*ends, len(text)]
        if self._starts[-1] == len(text) and len(self._starts) > 1:
            # A final line end closes the last line; it does not open an empty one.
            self._starts.pop()
            self._ends.pop()
        w = self._width
        rows = (
            max(1, -(-(end - start) // w))
            for start, end in zip(self._starts, self._ends, strict=True)
        )
        self._first_row = [0, *itertools.accumulate(rows)]

    def __len__(self) -> int:
        return self._first_row[-1]

    def _locate(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._first_row, index) - 1
        return line, self._starts[line] + (index - self._first_row[line]) * self._width

    def row(self, index: int) -> Line:
        line, start = self._locate(index)
        end = min(start + self._width, self._ends[line])
        return ((safe(self._text[start:end]), self._style),)

    def find(self, pattern: re.Pattern[str]) -> list[tuple[int, int, int]]:
        # Search the text once, then place each match: no row is built.
        found: list[tuple[int, int, int]] = []
        for match in pattern.finditer(self._text):
            if match.end() == match.start():
                continue
            line = bisect.bisect_right(self._starts, match.start()) - 1
            offset = match.start() - self._starts[line]
            row = self._first_row[line] + offset // self._width
            start = offset % self._width
            found.append((row, start, min(start + match.end() - match.start(), self._width)))
        return found


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
