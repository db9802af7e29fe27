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


def test_someone_who_never_stops_typing_gets_a_sweep_once_the_frozen_heap_has_grown() -> None:
    clock = Clock()
    policy = FrozenSurvivors(interval=1.0, clock=clock, sweep_after_growth=10_000)
    policy.start()
    try:
        kept = [Loop() for _ in range(5_000)]
        clock.now += SWEEP_INTERVAL
        policy.tend(quiet_for=0.0)
        assert policy.sweeps == 0  # grown by 5,000: frozen only
        kept += [Loop() for _ in range(10_000)]
        clock.now += 1.0
        policy.tend(quiet_for=0.0)  # frozen too: the frozen heap has grown by 15,000
        assert policy.sweeps == 0
        clock.now += 1.0
        policy.tend(quiet_for=0.0)
        assert policy.sweeps == 1
        assert len(kept) == 15_000
    finally:
        policy.stop()


def test_the_frozen_heap_is_walked_only_when_it_may_have_grown_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CPython counts the frozen heap by walking it (170-400 ms at the caps, every thread
    stopped): done at each freeze, it stalled the app twice a second once a sweep was due.
    What is frozen is counted as it is frozen, and the heap is walked only once that count
    reaches the threshold (frozen objects that die since make the true growth smaller)."""
    walks: list[int] = []
    count = gc.get_freeze_count

    def walking_count() -> int:
        walks.append(1)
        return count()

    clock = Clock()
    policy = FrozenSurvivors(interval=1.0, clock=clock, sweep_after_growth=10_000)
    policy.start()
    monkeypatch.setattr(gc, "get_freeze_count", walking_count)
    try:
        clock.now += SWEEP_INTERVAL  # a sweep is due, the keyboard never quiet
        first = [[n] for n in range(4_000)]  # freed by their count, unlike Loop
        tend(policy, clock)
        second = [[n] for n in range(4_000)]
        tend(policy, clock)
        del first, second  # frozen, then freed: the heap shrinks by as much
        third = [[n] for n in range(4_000)]
        tend(policy, clock)  # 12,000 frozen, counted as they were
        assert walks == []
        tend(policy, clock)  # the count reached 10,000: walked, and grown by 4,000 only
        assert walks == [1]
        assert policy.sweeps == 0
        tend(policy, clock)
        assert walks == [1]  # the count started again from the true growth
        assert policy.freezes == 6
        assert len(third) == 4_000
    finally:
        policy.stop()


def tend(policy: FrozenSurvivors, clock: Clock) -> None:
    clock.now += 1.0
    policy.tend(quiet_for=0.0)
