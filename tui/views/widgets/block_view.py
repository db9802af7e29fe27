"""A scroll view of blocks: rich renderables, drawn once per width, and message bodies, whose
lines are made only when they come on screen; with find's matches marked.

A body of 10 MB is 150,000 lines: rendering them all through rich would take seconds, so a
body block hands the model's lazy line sequence through, and ``render_line`` turns the one
line asked for into a strip.
"""

from __future__ import annotations

import bisect
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.strip import Strip

from tui.model.bodies import BodyMode, RenderedBody, render_body
from tui.model.find import Needle, next_index
from tui.model.masked_text import MaskedText, lazily_masked, not_formatted_note
from tui.model.secrets import could_hold_secrets, mask_body
from tui.model.text_lines import MAX_MATCHES, Line, RowSequence, WrappedText, plain
from tui.views.widgets.line_scroll import LineScrollView

parse_style = functools.lru_cache(maxsize=256)(Style.parse)

BODIES_KEPT = 4
"""Rendered bodies remembered: redrawing the same exchange (a redraw on new data, a toggle)
must not pay for a 10 MB body twice."""

LAZY_STRIPS_KEPT = 512
"""Strips of body lines remembered (a few screens' worth, for scrolling back and forth)."""

MASKING_TURN = 0.02
"""Seconds of masking a big body's rest per turn of the event loop (keys come first)."""

MATCH_STYLE = Style(color="black", bgcolor="yellow")
CURRENT_MATCH_STYLE = Style(color="black", bgcolor="bright_magenta", bold=True)


@dataclass(frozen=True, slots=True)
class BodyBlock:
    """A body to show in a view; rendered at the pane's width when drawn."""

    body: bytes
    content_type: str
    mode: BodyMode
    masked: bool = False
    """Secrets (JSON keys, form fields, ``name=value`` pairs, JWTs) are masked when drawn."""

    def render(self, width: int) -> RenderedBody:
        # The policy's quick test first: most bodies hold nothing to mask (10 MB: 20 ms).
        if not self.masked or not could_hold_secrets(self.body):
            return render_body(self.body, self.content_type, self.mode, width)
        # A big text body is masked a chunk at a time: its first screenful opens at once.
        text = lazily_masked(self.body, self.content_type, self.mode)
        if text is not None:
            note = not_formatted_note(self.body, self.content_type, self.mode)
            return RenderedBody("text", MaskedText(text, width), note)
        return render_body(
            mask_body(self.body, self.content_type), self.content_type, self.mode, width
        )

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # Outside the pane (printing, tests) the whole body is rendered at once.
        rendered = self.render(options.max_width)
        if isinstance(rendered.lines, MaskedText):
            while not rendered.lines.advance():
                pass
        if rendered.note:
            yield Text(f"({rendered.kind}: {rendered.note})", style="dim italic")
        for line in rendered.lines:
            yield Text.assemble(*((text, style or "") for text, style in line))


Block = RenderableType | BodyBlock

Match = tuple[int, int, int]
"""(row, start column, end column)."""


class BlockView(LineScrollView):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._blocks: Sequence[Block] = ()
        self._parts: list[Sequence[Strip] | Sequence[Line]] = []
        self._starts: list[int] = [0]
        self._rendered_width = -1
        self._lazy_strips: dict[int, Strip] = {}
        self._bodies: dict[tuple[int, str, str, int, bool], tuple[bytes, RenderedBody]] = {}
        self.rendered_bodies: list[RenderedBody] = []
        """The bodies as drawn, in order (their kind and note, for titles)."""
        self.needle: Needle | None = None
        self.matches: list[Match] = []
        self.current_match: int | None = None
        self._matches_by_row: dict[int, list[tuple[int, int, int]]] = {}
        self._masking = False
        """A turn of masking the rest of a big body is scheduled."""

    # -- content --------------------------------------------------------------------------

    def show_blocks(self, blocks: Sequence[Block], *, keep_scroll: bool = False) -> None:
        self._blocks = blocks
        self._rendered_width = -1
        self._render_blocks()
        if not keep_scroll:
            self.scroll_to(y=0, animate=False, immediate=True)
        self.refresh()

    @property
    def row_count(self) -> int:
        return self._starts[-1]

    @property
    def text(self) -> str:
        """What the view holds, as plain text (all of it, not only what is on screen)."""
        self._render_blocks()
        return "\n".join(self.row_text(row).rstrip() for row in range(self.row_count))

    def row_text(self, row: int) -> str:
        part, index = self._locate(row)
        item = self._parts[part][index]
        return item.text if isinstance(item, Strip) else plain(item)

    def on_resize(self, event: events.Resize) -> None:
        self._render_blocks()

    def _render_blocks(self) -> None:
        width = self.scrollable_content_region.width
        if width <= 0 or width == self._rendered_width:
            return
        self._rendered_width = width
        self._lazy_strips.clear()
        console = self.app.console
        options = console.options.update(width=width, height=None)
        self._parts = []
        self.rendered_bodies = []
        masking = False
        for block in self._blocks:
            if isinstance(block, BodyBlock):
                rendered = self._rendered_body(block, width)
                self.rendered_bodies.append(rendered)
                if rendered.note:
                    note: Line = ((f"({rendered.kind}: {rendered.note})", "dim italic"),)
                    self._parts.append([note])
                self._parts.append(rendered.lines)
                body_lines = rendered.lines
                if isinstance(body_lines, MaskedText) and not body_lines.done:
                    masking = True
                    more = f"… masking secrets in the rest: {body_lines.progress:.0%} done"
                    self._parts.append([((more, "dim italic"),)])
            else:
                lines = console.render_lines(block, options, style=self.rich_style, pad=True)
                self._parts.append([Strip(line, width) for line in lines])
        self._starts = [0]
        for part in self._parts:
            self._starts.append(self._starts[-1] + len(part))
        self.set_content_height(self.row_count)
        self._find_all()
        if masking and not self._masking:
            self._masking = True
            self.set_timer(0.001, self._mask_more)

    def _mask_more(self) -> None:
        """Mask more of the big bodies shown, then lay the rows out again (they grew)."""
        self._masking = False
        pending = [
            body.lines
            for body in self.rendered_bodies
            if isinstance(body.lines, MaskedText) and not body.lines.done
        ]
        if not pending:
            return
        deadline = time.perf_counter() + MASKING_TURN
        for lines in pending:
            while not lines.advance() and time.perf_counter() < deadline:
                pass
        self._rendered_width = -1
        self._render_blocks()
        self.refresh()

    def _rendered_body(self, block: BodyBlock, width: int) -> RenderedBody:
        # Keyed by the body object: bodies are immutable bytes, a body that grows is a new one.
        key = (id(block.body), block.content_type, block.mode, width, block.masked)
        kept = self._bodies.get(key)
        if kept is not None and kept[0] is block.body:
            return kept[1]
        rendered = block.render(width)
        if len(self._bodies) >= BODIES_KEPT:
            del self._bodies[next(iter(self._bodies))]
        self._bodies[key] = (block.body, rendered)
        return rendered

    def _locate(self, row: int) -> tuple[int, int]:
        part = bisect.bisect_right(self._starts, row) - 1
        return part, row - self._starts[part]

    # -- drawing --------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        row = int(self.scroll_y) + y
        width = self.scrollable_content_region.width
        if row >= self.row_count:
            return Strip.blank(width, self.rich_style)
        strip = self._strip(row, width)
        marks = self._matches_by_row.get(row)
        if marks:
            strip = self._marked(strip, marks)
        return strip.crop_extend(0, width, self.rich_style)

    def _strip(self, row: int, width: int) -> Strip:
        part, index = self._locate(row)
        item = self._parts[part][index]
        if isinstance(item, Strip):
            return item
        cached = self._lazy_strips.get(row)
        if cached is None:
            if len(self._lazy_strips) > LAZY_STRIPS_KEPT:
                self._lazy_strips.clear()
            base = self.rich_style
            segments = [
                Segment(text, base + parse_style(style) if style else base) for text, style in item
            ]
            cached = self._lazy_strips[row] = Strip(segments).crop_extend(0, width, base)
        return cached

    def _marked(self, strip: Strip, marks: list[tuple[int, int, int]]) -> Strip:
        cuts = sorted({cut for start, end, _ in marks for cut in (start, end)})
        pieces = strip.divide([*cuts, max(strip.cell_length, cuts[-1])])
        out: list[Strip] = []
        position = 0
        for piece in pieces:
            style = None
            for start, end, number in marks:
                if start <= position < end:
                    style = CURRENT_MATCH_STYLE if number == self.current_match else MATCH_STYLE
            out.append(piece.apply_style(style) if style is not None else piece)
            position += piece.cell_length
        return Strip.join(out)

    # -- find -----------------------------------------------------------------------------

    @property
    def match_count(self) -> str:
        """How many matches, as read: ``12``, or ``10000+`` past the cap."""
        count = len(self.matches)
        return f"{count}+" if count >= MAX_MATCHES else str(count)

    def set_needle(self, needle: Needle | None) -> None:
        self.needle = needle
        self.current_match = None
        self._find_all()
        self.refresh()

    def _find_all(self) -> None:
        self.matches = []
        self._matches_by_row = {}
        if self.needle is None:
            return
        pattern = self.needle.pattern
        for part, start in zip(self._parts, self._starts, strict=False):
            if isinstance(part, RowSequence):
                found = None
                if isinstance(part, WrappedText | MaskedText):
                    found = part.find_text(self.needle.key, self.needle.folded)
                if found is None:
                    found = part.find(pattern)
                self.matches += [(start + row, a, b) for row, a, b in found]
            else:
                for index in range(len(part)):
                    item = part[index]
                    text = item.text if isinstance(item, Strip) else plain(item)
                    self.matches += [
                        (start + index, m.start(), m.end())
                        for m in pattern.finditer(text)
                        if m.end() > m.start()
                    ]
            if len(self.matches) >= MAX_MATCHES:
                break
        del self.matches[MAX_MATCHES:]
        for number, (row, a, b) in enumerate(self.matches):
            self._matches_by_row.setdefault(row, []).append((a, b, number))
        if self.current_match is not None and self.current_match >= len(self.matches):
            self.current_match = None

    def jump_to_match(self, forward: bool, *, from_edge: bool = False) -> bool:
        """Move to the next (or previous) match; False when there is none that way.

        ``from_edge``: start from the first match (or the last, going back)."""
        current = None if from_edge else self.current_match
        found = next_index(len(self.matches), current, forward)
        if found is None:
            return False
        self.current_match = found
        row = self.matches[found][0]
        height = self.scrollable_content_region.height
        if not int(self.scroll_y) <= row < int(self.scroll_y) + height:
            self.scroll_to(y=max(row - height // 3, 0), animate=False, immediate=True)
        self.refresh()
        return True
