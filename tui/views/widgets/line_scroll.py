"""A Line-API scroll view whose content height can change ten times a second cheaply.

Textual's ``virtual_size`` is a reactive that re-lays out the whole screen when set; for a
table that grows with every refresh that means repainting every widget. Here the vertical
scrollbar is always there (so the layout never depends on the content height) and the height
is updated without the layout pass; only this widget and its scrollbar repaint.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.scroll_view import ScrollView
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
        self._scroll_update(size)
        if repaint:
            self.refresh()
