"""The filter, the main screen's keys that narrow what is listed: ``/`` opens the prompt
(applied as the user types, at a pace), ``!`` inverts it, ``esc`` clears it, and ``h`` picks a
header value from the inventory to filter on."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual import events, on
from textual.screen import Screen

from tui.model.filters import Filter, quote
from tui.model.store import Store
from tui.model.terminal_text import one_line
from tui.views.pending import PendingChanges
from tui.views.screens.headers import ChosenFilter, HeaderInventoryScreen
from tui.views.widgets.filter_bar import FilterBar
from tui.views.widgets.find_bar import FindBar
from tui.views.widgets.tables import ConnectionsTable, RequestsTable

if TYPE_CHECKING:
    from tui.views.widgets.status_bar import ViewMode

FILTER_PACE = 0.15
"""Seconds between re-filterings while an expression is being typed."""


def as_word(text: str) -> str:
    """``text`` as one filter argument: bare when it can be, else quoted."""
    bare = text and not any(ch.isspace() or ch in "()!&|\"'" for ch in text)
    return text if bare else quote(text)


class FilterKeys(Screen[None]):
    """What the main screen does for the filter; it provides the bars and the redraws."""

    if TYPE_CHECKING:
        store: Store
        mode: ViewMode
        filter_text: str
        filter_bar: FilterBar
        find_bar: FindBar
        _filter_before_edit: tuple[str, Filter | None]
        _typed_filter: tuple[str, Filter | None] | None
        _typed_filter_applied: float

        @property
        def left_table(self) -> ConnectionsTable | RequestsTable: ...
        def show_changes(self, changes: PendingChanges) -> None: ...
        def _draw_status(self) -> None: ...

    def action_open_filter(self) -> None:
        if self.find_bar.is_open:
            self.find_bar.input.post_message(events.Key("slash", "/"))
            return
        if self.filter_bar.is_open:
            # The priority binding caught a "/" typed in the expression: it is a character.
            # Queued behind the keys before it, so it lands in order. (Disabling the binding
            # instead would change, and so rebuild, the footer.)
            self.filter_bar.input.post_message(events.Key("slash", "/"))
            return
        self._filter_before_edit = (self.filter_text, self.store.filter)
        self.filter_bar.open(self.filter_text)

    @on(FilterBar.Applied)
    def _filter_applied(self, event: FilterBar.Applied) -> None:
        # Narrow the list as the user types, but at a pace: re-filtering everything at each
        # keystroke would make a fast typist wait for the screen.
        self._typed_filter = (event.text, event.filter)
        if time.monotonic() - self._typed_filter_applied >= FILTER_PACE:
            self.apply_typed_filter()

    def apply_typed_filter(self) -> None:
        if self._typed_filter is not None:
            typed, self._typed_filter = self._typed_filter, None
            self._typed_filter_applied = time.monotonic()
            self._set_filter(*typed)

    @on(FilterBar.Closed)
    def _filter_closed(self, event: FilterBar.Closed) -> None:
        if event.accepted:
            self.apply_typed_filter()
        else:
            self._typed_filter = None
            self._set_filter(*self._filter_before_edit)
        self.filter_bar.close(self.filter_text)
        self.left_table.focus()

    def _set_filter(self, text: str, parsed: Filter | None) -> None:
        self.filter_text = text if parsed is not None else ""
        self.store.set_filter(parsed, invert=self.store.inverted and parsed is not None)
        if not self.filter_bar.is_open:
            self.filter_bar.close(self.filter_text)
        self._redraw_all()

    def action_invert(self) -> None:
        if self.store.filter is None:
            self.notify("No filter to invert: press / to type one first.", severity="warning")
            return
        self.store.set_filter(self.store.filter, invert=not self.store.inverted)
        self._redraw_all()

    def _redraw_all(self) -> None:
        if self.mode == "paused":
            self.mode = "following"
        self.show_changes(PendingChanges.full())
        self._draw_status()

    def action_headers(self) -> None:
        def chosen(choice: ChosenFilter | None) -> None:
            if choice is not None:
                self._set_filter(choice.text, choice.parsed)
                # The expression quotes a header value from the network: plain, escaped text.
                self.notify(one_line(choice.text), title="Filter", markup=False)

        self.app.push_screen(HeaderInventoryScreen(self.store), chosen)
