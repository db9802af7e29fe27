"""Find, the keys of the main screen that look for text: ``f`` opens the prompt, ``n`` and
``N`` go from match to match in the detail pane, then on to the next request (newest first,
as the requests view lists them) that mentions the text, going round; the filter stays as it
is. Find looks through what the pane shows: secrets masked unless revealed (``s``).

Through 100,000 requests the looking is done a slice at a time, so that the screen keeps
answering and shows how far it got. The requests' texts as shown are kept between looks
(``FindTexts``), and made while the find text is typed (after ``f``, a slice per turn of the
event loop), so that even the first ``n`` only joins and scans text."""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual import events
from textual.screen import Screen
from textual.widget import Widget

from tui.model.find import FindTexts, Needle, ScanAround, make_needle
from tui.model.flows import Exchange
from tui.model.store import Store
from tui.views.widgets.detail import DetailPane
from tui.views.widgets.filter_bar import FilterBar
from tui.views.widgets.find_bar import FindBar
from tui.views.widgets.tables import RequestsTable

SCAN_TURN = 0.05
"""Seconds of looking per turn of the event loop: then a frame and the keys typed meanwhile
(each turn costs a frame more: fewer, longer turns reach the match sooner)."""

FIRST_TURN = 0.15
"""Seconds of the first turn, when the texts are made: enough for 100,000 on a busy machine
(50 ms on an idle one), so that the match comes with the first frame, not after a frame
that says how far the looking got."""

SCAN_SLICE = 20_000
"""Requests looked through at once, once their texts are made (about 12 ms)."""

COLD_SLICE = 1000
"""Requests looked through at once while their texts are still being made (20 ms: masking and
formatting cost twenty times more than looking)."""

WARM_TURN = 0.015
"""Seconds of making texts per turn of the event loop while the find text is typed: short,
so that keys typed meanwhile are answered at once."""

WARM_SLICE = 200
"""Requests whose texts are made at once (about 5 ms)."""


class FindKeys(Screen[None]):
    """What the main screen does for find; it provides the panes and selection moves."""

    if TYPE_CHECKING:
        store: Store
        detail: DetailPane
        find_bar: FindBar
        filter_bar: FilterBar
        needle: Needle | None
        find_texts: FindTexts
        reveal_secrets: bool
        _scan: ScanAround | None
        _warming: tuple[list[Exchange], int] | None
        _shown_exchange: Exchange | None
        _requests_outdated: bool
        requests_table: RequestsTable

        @property
        def left_table(self) -> Widget: ...
        def _stop_following(self) -> None: ...
        def _select_exchange(self, exchange: Exchange) -> None: ...
        def _draw_detail(self, *, keep_scroll: bool = False) -> None: ...
        def _draw_detail_subtitle(self) -> None: ...

    def action_find(self) -> None:
        # The priority binding caught an "f" typed in a prompt: it is a character there.
        for prompt in (self.find_bar, self.filter_bar):
            if prompt.is_open:
                prompt.input.post_message(events.Key("f", "f"))
                return
        self.filter_bar.display = False
        self.find_bar.open("" if self.needle is None else self.needle.text)
        self._start_warming()

    def _start_warming(self) -> None:
        """Make the texts find looks through, newest first, while the user types."""
        self.find_texts.show_secrets(self.reveal_secrets)
        idle = self._warming is None
        self._warming = (self.store.visible_exchanges_in_order()[::-1], 0)
        if idle:
            self.set_timer(0.002, self._continue_warming)

    def _continue_warming(self) -> None:
        warming = self._warming
        if warming is None:
            return
        exchanges, position = warming
        texts = self.find_texts
        texts.show_secrets(self.reveal_secrets)
        deadline = time.perf_counter() + WARM_TURN
        while position < len(exchanges) and time.perf_counter() < deadline:
            position = texts.warm(exchanges, position, WARM_SLICE)
        if position >= len(exchanges):
            self._warming = None
            return
        self._warming = (exchanges, position)
        self.set_timer(0.002, self._continue_warming)

    def on_find_bar_changed(self, event: FindBar.Changed) -> None:
        self.needle = make_needle(event.text)
        self.detail.set_needle(self.needle)
        self.detail.jump_to_match(True, from_edge=True)
        self._show_find_count()

    def on_find_bar_closed(self, event: FindBar.Closed) -> None:
        if not event.accepted:
            self.needle = None
            self.detail.set_needle(None)
        self.find_bar.display = False
        self.filter_bar.display = True
        self._show_find_count()
        self.left_table.focus()

    def _show_find_count(self) -> None:
        count = self.detail.match_count
        current = self.detail.current_match
        where = f"{current + 1} of {count}" if current is not None else f"{count}"
        self.find_bar.show_count(f"{where} matches here · enter keeps it, then n/N · esc drops it")
        self._draw_detail_subtitle()

    def action_find_next(self, forward: bool) -> None:
        needle = self.needle
        if needle is None:
            self.notify("Press f to type the text to find first.", severity="warning")
            return
        # The user is reading matches: new traffic must not move the request away.
        self._stop_following()
        if self.detail.jump_to_match(forward):
            self._draw_detail_subtitle()
            return
        # No more here: on to the next request that mentions it (see the module's comment),
        # in the requests view's list when it is current (walking the store costs 10 ms).
        ordered: Sequence[Exchange] = self.requests_table.rows
        if self._requests_outdated:
            ordered = self.store.visible_exchanges_in_order()[::-1]
        current = _position(ordered, self._shown_exchange)
        self.find_texts.show_secrets(self.reveal_secrets)
        self._scan = ScanAround(ordered, current, needle, forward, self.find_texts)
        if len(ordered) - len(self.find_texts) > COLD_SLICE:
            # Many requests came since the texts were made: make theirs too, and look in
            # small slices meanwhile (a slice of texts to make costs twenty times more).
            self._start_warming()
        self._continue_scan(FIRST_TURN if self._warming is None else SCAN_TURN)

    def _continue_scan(self, turn: float = SCAN_TURN) -> None:
        scan = self._scan
        if scan is None or scan.needle is not self.needle:
            return  # replaced by another find, or the find text changed
        deadline = time.perf_counter() + turn
        size = SCAN_SLICE if self._warming is None else COLD_SLICE
        done = scan.step(size)
        while not done and time.perf_counter() < deadline:
            done = scan.step(size)
        if not done:
            self.detail.border_subtitle = f"find {scan.needle.text!r}: looking… {scan.progress:.0%}"
            self.set_timer(0.002, self._continue_scan)
            return
        self._scan = None
        forward = scan.forward
        if scan.found is None:
            if not self.detail.jump_to_match(forward, from_edge=True):
                self.notify(f"No request shown mentions {scan.needle.text!r}.", severity="warning")
            self._draw_detail_subtitle()
            return
        self._select_exchange(scan.exchanges[scan.found])
        self._draw_detail()
        self.detail.jump_to_match(forward, from_edge=True)
        self._draw_detail_subtitle()


def _position(exchanges: Sequence[Exchange], exchange: Exchange | None) -> int | None:
    """Where ``exchange`` is listed (by identity, in one C-level pass), or None."""
    if exchange is None:
        return None
    try:
        return operator.indexOf(exchanges, exchange)
    except ValueError:
        return None
