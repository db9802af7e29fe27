"""A table for rows that change ten times a second: it renders only the lines on screen.

``DataTable`` keeps every row as widgets' state and removing rows is O(n) each; here the table
holds a plain sequence the caller replaces wholesale, and asks for the cells of a row only when
that row is drawn. The cursor follows a row's *key*, so that rows arriving above it (newest
first) do not move what the user is looking at.

When the rows are replaced or scrolled, only the lines of the screen whose content changed are
redrawn: Textual's compositor spends some 50 µs on every line it redraws, and under load most
rows on screen are the rows that were there (the cursor's row kept in place while new ones
arrive above it, a count that did not move).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, TypeVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip

from tui.model.terminal_text import one_line
from tui.views.widgets.line_scroll import LineScrollView

parse_style = functools.lru_cache(maxsize=256)(Style.parse)

STRIPS_KEPT = 4096
"""Rendered rows remembered per table (a few screens' worth, across refreshes)."""

RowT = TypeVar("RowT")
KeyT = TypeVar("KeyT", bound=Hashable)

Cell = str | tuple[str, str] | Text
"""Plain text, (text, rich style), or rich Text (slowest: only for mixed styles)."""

Line = tuple[tuple[Cell, ...], Style, bool] | None
"""What a line of the table shows: its cells, its style, whether it is one plain text (the
empty table's message) rather than cells in columns; None for a blank line."""


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    width: int
    """Cells of this width; for the flexible column, its least width."""
    justify: Literal["left", "right"] = "left"
    flexible: bool = False
    """Takes whatever width the other columns leave (one per table)."""


class LiveTable(LineScrollView, Generic[RowT, KeyT], can_focus=True):
    """Rows newest first (or in any order the caller likes); a one-line header that stays put."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="table.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="table.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="table.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="table.page_down"),
        Binding("home,g", "first", "First row", show=False, id="table.first"),
        Binding("end,G", "last", "Last row", show=False, id="table.last"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "live-table--header",
        "live-table--cursor",
        "live-table--empty",
    }

    DEFAULT_CSS = """
    LiveTable {
        height: 1fr;
        background: $surface;
        scrollbar-size-vertical: 1;
        & > .live-table--header { text-style: bold; color: $text-accent; background: $panel; }
        & > .live-table--cursor { background: $block-cursor-blurred-background; }
        & > .live-table--empty { color: $text-muted; text-style: italic; }
        &:focus > .live-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: bold;
        }
    }
    """

    class Highlighted(Message):
        """The row under the cursor is another one (``key`` is None when the table is empty).

        ``by_data``: new rows moved it (the table follows the first row), not the user.
        """

        def __init__(
            self, table: LiveTable[object, Hashable], key: Hashable | None, by_data: bool
        ) -> None:
            super().__init__()
            self.table = table
            self.key = key
            self.by_data = by_data

        @property
        def control(self) -> LiveTable[object, Hashable]:
            return self.table

    class Moved(Message):
        """The user moved the cursor (by key or mouse), as opposed to the data moving under it."""

        def __init__(self, table: LiveTable[object, Hashable], at_first_row: bool) -> None:
            super().__init__()
            self.table = table
            self.at_first_row = at_first_row

        @property
        def control(self) -> LiveTable[object, Hashable]:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        cells: Callable[[RowT], Sequence[Cell]],
        key: Callable[[RowT], KeyT],
        *,
        empty_text: str = "",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.columns = list(columns)
        self._cells = cells
        self._key = key
        self.empty_text = empty_text
        self._rows: Sequence[RowT] = ()
        self._cursor = 0
        self._cursor_key: KeyT | None = None
        self._hidden_columns: frozenset[str] = frozenset()
        self._widths_cache: dict[tuple[int, frozenset[str]], list[int]] = {}
        self._line_styles = (Style(), Style(), Style(), Style())
        self._strips: dict[tuple[tuple[Cell, ...], int, Style, bool], Strip] = {}
        self._drawn: dict[int, Line] = {}
        """What each line of the screen showed when it was last rendered."""
        self._comparing_after = False
        """Set while rows, cursor and scroll change in several steps: the lines are compared
        once, after the last, not on each scroll."""

    # -- what the owner calls -------------------------------------------------------------

    @property
    def rows(self) -> Sequence[RowT]:
        return self._rows

    @property
    def hidden_columns(self) -> frozenset[str]:
        """Titles of columns not drawn (e.g. the pod when there is only one)."""
        return self._hidden_columns

    @hidden_columns.setter
    def hidden_columns(self, titles: set[str] | frozenset[str]) -> None:
        if titles != self._hidden_columns:
            self._hidden_columns = frozenset(titles)
            self._strips.clear()
            self.refresh()  # every line's layout changes, and the header's

    @property
    def cursor_row(self) -> int:
        return self._cursor

    @property
    def cursor_key(self) -> KeyT | None:
        return self._cursor_key

    @property
    def cursor_value(self) -> RowT | None:
        return self._rows[self._cursor] if self._rows else None

    def show(self, rows: Sequence[RowT], *, stick_to_first: bool = False) -> None:
        """Replace the rows. The cursor stays on its row (found by key) and keeps its place on
        screen, unless ``stick_to_first`` puts it on the first row."""
        old_index = self._cursor
        self._rows = rows
        index = 0
        if not stick_to_first and self._cursor_key is not None:
            found = self._index_of(self._cursor_key, hint=old_index)
            index = min(old_index, max(len(rows) - 1, 0)) if found is None else found
        self._comparing_after = True
        try:
            self.set_content_height(len(rows) + 1, repaint=False)
            if stick_to_first:
                self.scroll_to(y=0, animate=False, immediate=True)
            elif index != old_index:
                # Rows arrived above: scroll by as much so the row stays where the eye is.
                self.scroll_to(y=self.scroll_y + index - old_index, animate=False, immediate=True)
            self._place_cursor(index, by_data=True)
        finally:
            self._comparing_after = False
        self.refresh_rows()

    def refresh_rows(self) -> None:
        """Redraw the lines of the screen whose content changed since they were drawn (the
        rows' cells are asked for again: call it when they may have changed in place)."""
        width = max(self.virtual_size.width, self.size.width)
        drawn = self._drawn
        changed = [
            Region(0, y, width, 1)
            for y in range(self.scrollable_content_region.height)
            if y not in drawn or self._line(y) != drawn[y]
        ]
        if changed:
            self.refresh(*changed)

    def select_key(self, key: KeyT) -> bool:
        """Put the cursor on the row with ``key`` (False if no row has it)."""
        index = self._index_of(key, hint=self._cursor)
        if index is not None:
            self.move_cursor_to(index)
        return index is not None

    def select_row(self, row: RowT) -> bool:
        """Put the cursor on ``row`` itself (False if it is not listed): found by identity in
        one C-level pass, where a key made per row costs a Python call each (30 ms through
        100,000 rows)."""
        try:
            index = operator.indexOf(self._rows, row)
        except ValueError:
            return False
        self.move_cursor_to(index)
        return True

    def move_cursor_to(self, index: int) -> None:
        self._place_cursor(index)
        self._scroll_cursor_into_view()

    # -- keys -----------------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        self._user_move(self._cursor + delta)

    def action_page(self, direction: int) -> None:
        self._user_move(self._cursor + direction * max(self._body_height - 1, 1))

    def action_first(self) -> None:
        self._user_move(0)

    def action_last(self) -> None:
        self._user_move(len(self._rows) - 1)

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1:
            self.focus()
            self._user_move(int(self.scroll_y) + event.y - 1)

    # -- rendering ------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # Styles come from CSS and cost a lookup each: resolve them once per repaint.
        self._line_styles = (
            self.rich_style,
            self.get_component_rich_style("live-table--header"),
            self.get_component_rich_style("live-table--cursor"),
            self.get_component_rich_style("live-table--empty"),
        )
        return super().render_lines(crop)

    def _scrolled(self) -> None:
        # Textual redraws every line of a scrolled view; here only the lines that differ.
        if not self._comparing_after:
            self.refresh_rows()

    def _line(self, y: int) -> Line:
        base, header, cursor, empty = self._line_styles
        if y == 0:
            return tuple(c.title for c in self.columns), header, False
        if not self._rows:
            return ((self.empty_text,), empty, True) if y == 1 and self.empty_text else None
        index = int(self.scroll_y) + y - 1
        if index >= len(self._rows):
            return None
        style = base + cursor if index == self._cursor else base
        return tuple(self._cells(self._rows[index])), style, False

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        line = self._drawn[y] = self._line(y)
        if line is None:
            return Strip.blank(width, self._line_styles[0])
        cells, style, plain = line
        try:
            key = (cells, width, style, plain)
            cached = self._strips.get(key)
        except TypeError:  # a rich Text cell: not hashable, not cached
            return self._strip(cells, width, style, plain=plain)
        if cached is None:
            # Rows shift down as new ones arrive, their cells mostly unchanged: reuse strips.
            if len(self._strips) > STRIPS_KEPT:
                self._strips.clear()
            cached = self._strips[key] = self._strip(cells, width, style, plain=plain)
        return cached

    def _strip(
        self, cells: Sequence[Cell], width: int, style: Style, *, plain: bool = False
    ) -> Strip:
        # Segments are built by hand: this runs for every line drawn, ten times a second.
        segments: list[Segment] = []
        if plain:
            segments.append(Segment(" ", style))
            for cell in cells:
                segments += self._cell_segments(cell, width, style)[0]
        else:
            for column, column_width, cell in zip(
                self.columns, self._widths(width), cells, strict=False
            ):
                if column.title in self.hidden_columns:
                    continue
                cell_segments, used = self._cell_segments(cell, column_width, style)
                padding = Segment(" " * (column_width - used), style)
                segments.append(Segment(" ", style))
                if column.justify == "right":
                    segments.append(padding)
                    segments += cell_segments
                else:
                    segments += cell_segments
                    segments.append(padding)
        return Strip(segments).crop_extend(0, width, style)

    def _cell_segments(self, cell: Cell, width: int, style: Style) -> tuple[list[Segment], int]:
        if isinstance(cell, tuple):
            plain, style_name = cell
            style = style + parse_style(style_name) if style_name else style
            cell = plain
        if isinstance(cell, str):
            # Cells show paths, hosts and header values from the network: never raw controls.
            cell = one_line(cell)
            used = cell_len(cell)
            if used > width:
                cell = set_cell_size(cell, max(width - 1, 0)) + "…"
                used = width
            return [Segment(cell, style)], used
        text = cell
        if one_line(text.plain) != text.plain:
            text = Text(one_line(text.plain), style=text.style)
        if text.cell_len > width:
            text = text.copy()
            text.truncate(width, overflow="ellipsis")
        console = self.app.console
        # Text.render leaves out the text's own base style: add it back.
        base = style + console.get_style(text.style) if text.style else style
        segments = [
            Segment(segment.text, base + segment.style if segment.style else base)
            for segment in text.render(console, end="")
        ]
        return segments, text.cell_len

    def _widths(self, width: int) -> list[int]:
        key = (width, frozenset(self.hidden_columns))
        cached = self._widths_cache.get(key)
        if cached is None:
            fixed = 1 + sum(
                c.width + 1
                for c in self.columns
                if not c.flexible and c.title not in self.hidden_columns
            )
            spare = max(width - fixed - 1, 0)
            cached = [max(c.width, spare) if c.flexible else c.width for c in self.columns]
            self._widths_cache = {key: cached}
            self._strips.clear()
        return cached

    # -- cursor bookkeeping ---------------------------------------------------------------

    @property
    def _body_height(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def _index_of(self, key: KeyT, hint: int) -> int | None:
        rows = self._rows
        # Look near the old place first: rows usually shift by a few per refresh.
        for index in range(max(hint - 8, 0), min(hint + 64, len(rows))):
            if self._key(rows[index]) == key:
                return index
        for index, row in enumerate(rows):
            if self._key(row) == key:
                return index
        return None

    def _place_cursor(self, index: int, *, by_data: bool = False) -> None:
        self._cursor = max(0, min(index, len(self._rows) - 1)) if self._rows else 0
        new_key = self._key(self._rows[self._cursor]) if self._rows else None
        if new_key != self._cursor_key:
            self._cursor_key = new_key
            self.post_message(self.Highlighted(self, new_key, by_data))  # type: ignore[arg-type]

    def _user_move(self, index: int) -> None:
        self._place_cursor(index)
        self._scroll_cursor_into_view()
        self.post_message(self.Moved(self, self._cursor == 0))  # type: ignore[arg-type]

    def _scroll_cursor_into_view(self) -> None:
        """Scroll if the cursor left the screen, and redraw the lines that changed."""
        top = int(self.scroll_y)
        height = self._body_height
        self._comparing_after = True
        try:
            if self._cursor < top:
                self.scroll_to(y=self._cursor, animate=False, immediate=True)
            elif self._cursor >= top + height:
                self.scroll_to(y=self._cursor - height + 1, animate=False, immediate=True)
        finally:
            self._comparing_after = False
        self.refresh_rows()
