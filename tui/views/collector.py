"""How the app runs Python's cyclic garbage collector: survivors are frozen, so that a pass
never walks the store, and the frozen heap is swept only while nobody types.

The store holds up to 100,000 exchanges: close to a million objects the collector tracks. A
full pass over them takes half a second to two, and CPython starts one whenever a quarter as
many new objects survived, which under a busy service is every few seconds: the screen froze
for that long, in the middle of someone's keystrokes. Nothing the store lets go of is cyclic
garbage (an evicted exchange or connection is freed by its reference count), so the app
collects what is young, then moves every survivor to the permanent generation, which passes
skip. A pass then only walks what was made since the last freeze.

What the screen draws is another matter: Textual's rendered lines refer to themselves, so a
line that was on screen (or in a cache) when a freeze came, and is dropped later, is garbage
no pass reaches. That is what the sweep is for: everything thawed and collected at once, at
most once a SWEEP_INTERVAL, once the keyboard has been quiet for SWEEP_AFTER_QUIET, or, for
someone who never stops typing, once the heap has grown by SWEEP_AFTER_GROWTH blocks of memory
(the one pause, of up to two seconds, that bounds the memory).
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable

Clock = Callable[[], float]

FREEZE_INTERVAL = 0.5
"""Seconds between two freezes while traffic flows. Shorter makes the pass before each freeze
shorter (it walks what was made since the last one), but freezes more of the screen's lines
that will be garbage soon after. A key pressed during that pass waits for it: at 2,000
exchanges/s, every second gave passes of 20 ms (p95 50 ms), every half second 10 ms (p95
15 ms), for 1.8 times the frozen garbage."""

SWEEP_INTERVAL = 60.0
"""Seconds between two sweeps at most: a sweep walks the whole heap (up to two seconds with the
store full)."""

SWEEP_AFTER_QUIET = 5.0
"""Seconds without a key before a sweep may start: someone reading the screen, not typing."""

SWEEP_AFTER_GROWTH = 6_000_000
"""Blocks of memory the heap may gain since the last sweep before one is due, keys or not
(``sys.getallocatedblocks``: Python's small allocations, where every object the collector
tracks lives, with most of what they hold). A sweep with the store at its caps stops the
screen for half a second to two, so it must not come while someone types; but memory must stay
bounded for someone who never stops. Filling the store to its caps adds about three million
blocks (two for 100,000 exchanges, one for 10,000 connections), and the screen's frozen
garbage about 3,500 a second at 2,000 exchanges/s: this is reached after about 15 minutes of
typing without a five-second pause.

Memory is counted rather than frozen objects because CPython counts those only by walking
every one of them (``gc.get_freeze_count``), with every thread stopped: 170-400 ms at the
caps, a stall as bad as the passes freezing avoids. It counts blocks from its allocator's
pools instead, in a tenth of a millisecond. And what is counted is what matters: frozen
objects that die (evicted exchanges, tens of thousands a second at the caps) give their memory
back, so the count follows what the heap holds."""

YOUNG_THRESHOLD = 10_000
"""Allocations between two passes over the youngest generation (CPython's default is 700):
the objects a batch of exchanges makes are still alive at the end of the batch, and walking
them every 700 allocations is work thrown away."""


class FrozenSurvivors:
    """The collector policy while the app runs: ``start`` when it has started, ``tend`` often
    (it freezes or sweeps when due), ``stop`` when it exits (everything is thawed, so that what
    the app leaves behind is collected as usual)."""

    def __init__(
        self,
        interval: float = FREEZE_INTERVAL,
        clock: Clock = time.monotonic,
        sweep_after_growth: int = SWEEP_AFTER_GROWTH,
    ) -> None:
        self.interval = interval
        self.sweep_after_growth = sweep_after_growth
        self.clock = clock
        self.freezes = 0
        self.sweeps = 0
        self._thresholds: tuple[int, int, int] | None = None
        self._frozen_at = 0.0
        self._swept_at = 0.0
        self._blocks_after_sweep = 0

    @property
    def active(self) -> bool:
        return self._thresholds is not None

    def start(self) -> None:
        if self._thresholds is not None:
            return
        self._thresholds = gc.get_threshold()
        _, middle, oldest = self._thresholds
        gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
        self._swept_at = self.clock()
        self._freeze()
        self._blocks_after_sweep = sys.getallocatedblocks()

    def tend(self, quiet_for: float = 0.0) -> None:
        """Freeze or sweep if it is time; ``quiet_for``: seconds since the last key."""
        if self._thresholds is None:
            return
        now = self.clock()
        sweep_due = now - self._swept_at >= SWEEP_INTERVAL
        if sweep_due and quiet_for >= SWEEP_AFTER_QUIET:
            self._sweep()
        elif now - self._frozen_at >= self.interval:
            if sweep_due and self.grown_since_sweep() >= self.sweep_after_growth:
                self._sweep()
            else:
                self._freeze()

    def grown_since_sweep(self) -> int:
        """Blocks of memory the heap has gained since the last sweep (or the start)."""
        return sys.getallocatedblocks() - self._blocks_after_sweep

    def stop(self) -> None:
        if self._thresholds is None:
            return
        gc.set_threshold(*self._thresholds)
        self._thresholds = None
        gc.unfreeze()

    def _freeze(self) -> None:
        # Collect first: cyclic garbage frozen now would never be collected. Only what is not
        # frozen yet is walked, so this pass is as short as the interval is.
        gc.collect()
        gc.freeze()
        self.freezes += 1
        self._frozen_at = self.clock()

    def _sweep(self) -> None:
        gc.unfreeze()
        self._freeze()
        self.sweeps += 1
        self._swept_at = self._frozen_at
        self._blocks_after_sweep = sys.getallocatedblocks()
