"""A Line-API scroll view whose content height can change ten times a second cheaply.

Textual's ``virtual_size`` is a reactive that re-lays out the whole screen when set; for a
table that grows with every refresh that means repainting every widget. Here the vertical
scrollbar is always there (so the layout never depends on the content height) and the height
is updated without the layout pass; only this widget repaints, and its scrollbar only when its
thumb moves on screen: a list of thousands of rows gains a few a tick, and Textual would redraw
every line of the bar for each, the same bar as before.
"""

from __future__ import annotations

from math import ceil

from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.widget import Widget


class LineScrollView(ScrollView):
    DEFAULT_CSS = """
    LineScrollView {
        overflow-y: scroll;
        overflow-x: hidden;
        /* The track is always there: keep it quiet until there is something to scroll. */
        scrollbar-background: $surface;
        scrollbar-background-hover: $surface;
        scrollbar-background-active: $surface;
    }
    """

    def set_content_height(self, height: int, *, repaint: bool = True) -> None:
        """``repaint``: redraw every line (False: the caller redraws what changed)."""
        size = Size(self.size.width, height)
        if size == self.virtual_size:
            return
        self.set_reactive(Widget.virtual_size, size)
        window = self.container_size.height - self.scrollbar_size_horizontal
        self._move_scrollbar(virtual_height=height, window_height=window)
        self.scroll_y = self.validate_scroll_y(self.scroll_y)
        if repaint:
            self.refresh()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        self._move_scrollbar(position=new_value)
        if round(old_value) != round(new_value):
            self._scrolled()

    def _scrolled(self) -> None:
        """The view scrolled by a line or more: redraw what it shows."""
        self.refresh(self.size.region)

    def _move_scrollbar(
        self,
        *,
        virtual_height: int | None = None,
        window_height: int | None = None,
        position: float | None = None,
    ) -> None:
        bar = self.vertical_scrollbar
        before = _thumb(bar)
        if virtual_height is not None:
            bar.set_reactive(ScrollBar.window_virtual_size, virtual_height)
        if window_height is not None:
            bar.set_reactive(ScrollBar.window_size, window_height)
        if position is not None:
            bar.set_reactive(ScrollBar.position, position)
        if _thumb(bar) != before:
            bar.refresh()


def _thumb(bar: ScrollBar) -> list[object]:
    """What ``bar`` draws on its track, as Textual's own renderer lays it out."""
    virtual, window = bar.window_virtual_size, bar.window_size
    drawn = bar.renderer.render_bar(
        size=bar.size.height,
        virtual_size=ceil(virtual),
        window_size=ceil(window) if window < virtual else 0,
        position=bar.position,
        thickness=bar.thickness,
        vertical=True,
    )
    return list(drawn.segments)
