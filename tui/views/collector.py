"""How the app runs Python's cyclic garbage collector: survivors are frozen, so that a pass
never walks the store.

The store holds up to 100,000 exchanges: close to a million objects the collector tracks. A
full pass over them takes half a second, and CPython starts one whenever a quarter as many new
objects survived, which under a busy service is every few seconds: the screen froze for that
long, in the middle of someone's keystrokes. Almost nothing the store keeps is cyclic garbage
later (an evicted exchange or connection is freed by its reference count), so the app collects
what is young, then moves every survivor to the permanent generation, which passes skip. A pass
then only walks what was made since the last freeze: a few milliseconds.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

Clock = Callable[[], float]

FREEZE_INTERVAL = 0.25
"""Seconds between two freezes while traffic flows: what is made in between is walked by the
collector's passes until then, so this bounds how long a pass can take."""

YOUNG_THRESHOLD = 10_000
"""Allocations between two passes over the youngest generation (CPython's default is 700):
the objects a batch of exchanges makes are still alive at the end of the batch, and walking
them every 700 allocations is work thrown away."""


class FrozenSurvivors:
    """The collector policy while the app runs: ``start`` when it has started, ``tend`` often
    (it freezes at most every FREEZE_INTERVAL), ``stop`` when it exits (everything is thawed, so
    that what the app leaves behind is collected as usual)."""

    def __init__(self, interval: float = FREEZE_INTERVAL, clock: Clock = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.freezes = 0
        self._thresholds: tuple[int, int, int] | None = None
        self._frozen_at = 0.0

    @property
    def active(self) -> bool:
        return self._thresholds is not None

    def start(self) -> None:
        if self._thresholds is not None:
            return
        self._thresholds = gc.get_threshold()
        _, middle, oldest = self._thresholds
        gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
        self._freeze()

    def tend(self) -> None:
        if self._thresholds is not None and self.clock() - self._frozen_at >= self.interval:
            self._freeze()

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
