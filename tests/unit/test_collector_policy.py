"""The app's collector policy: survivors are frozen (passes skip them), and a sweep, only after
the keyboard has been quiet, collects the cyclic garbage that freezing kept."""

from __future__ import annotations

import gc
import weakref

import pytest

from tui.views.collector import SWEEP_AFTER_QUIET, SWEEP_INTERVAL, FrozenSurvivors

pytestmark = pytest.mark.timeout(30)


class Loop:
    """Refers to itself, as Textual's rendered lines do: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_frozen_garbage_waits_for_a_quiet_keyboard_then_is_swept() -> None:
    clock = Clock()
    policy = FrozenSurvivors(interval=1.0, clock=clock)
    thresholds = gc.get_threshold()
    cycle = Loop()
    alive = weakref.ref(cycle)
    policy.start()
    try:
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] > thresholds[0]
        del cycle
        gc.collect()
        assert alive() is not None, "a frozen object was walked"
        # Traffic flows and keys are pressed: freezes, no sweep.
        clock.now += SWEEP_INTERVAL
        policy.tend(quiet_for=0.5)
        gc.collect()
        assert alive() is not None
        assert policy.freezes == 2
        assert policy.sweeps == 0
        # The keyboard has been quiet long enough: swept.
        policy.tend(quiet_for=SWEEP_AFTER_QUIET)
        assert alive() is None
        assert policy.sweeps == 1
        # And not again before SWEEP_INTERVAL.
        clock.now += 1.0
        policy.tend(quiet_for=SWEEP_AFTER_QUIET)
        assert policy.sweeps == 1
    finally:
        policy.stop()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


def test_someone_who_never_stops_typing_gets_a_sweep_once_the_heap_has_grown() -> None:
    clock = Clock()
    policy = FrozenSurvivors(interval=1.0, clock=clock, sweep_after_growth=20_000)
    policy.start()
    try:
        kept = [Loop() for _ in range(1_000)]
        clock.now += SWEEP_INTERVAL
        policy.tend(quiet_for=0.0)
        assert policy.sweeps == 0  # grown by a few thousand blocks: frozen only
        kept += [Loop() for _ in range(30_000)]
        clock.now += 1.0
        policy.tend(quiet_for=0.0)
        assert policy.sweeps == 1
        assert policy.grown_since_sweep() < 20_000
        assert len(kept) == 31_000
    finally:
        policy.stop()


def test_frozen_objects_that_die_give_their_growth_back_and_the_heap_is_never_walked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CPython counts the frozen heap only by walking it (170-400 ms at the caps, every
    thread stopped): counted at each freeze, it stalled the app. The policy counts memory
    instead, which also gives back what frozen objects that die (evicted exchanges) held."""
    walks: list[int] = []
    count = gc.get_freeze_count

    def walking_count() -> int:
        walks.append(1)
        return count()

    clock = Clock()
    policy = FrozenSurvivors(interval=1.0, clock=clock, sweep_after_growth=50_000)
    policy.start()
    monkeypatch.setattr(gc, "get_freeze_count", walking_count)
    try:
        clock.now += SWEEP_INTERVAL  # a sweep is due, the keyboard never quiet
        for _ in range(5):
            evicted = [[n] for n in range(10_000)]  # 30,000 blocks, freed by their count
            tend(policy, clock)  # frozen
            del evicted  # and freed while frozen: 150,000 blocks frozen, none kept
        tend(policy, clock)
        assert policy.sweeps == 0
        assert policy.freezes == 7
        assert walks == []
    finally:
        policy.stop()


def tend(policy: FrozenSurvivors, clock: Clock) -> None:
    clock.now += 1.0
    policy.tend(quiet_for=0.0)
