"""Capture times read from files, kept within what clocks and dates can show.

A recording is a stranger's file: a time of 1e20 (or NaN, or before 1970) would make every date
shown or written from it fail. Times are clamped once, when read, so the rest of podtap can
trust them.
"""

from __future__ import annotations

LATEST = 4_102_444_800.0
"""2100-01-01T00:00:00Z: later times are taken as that."""


def plausible_time(ts: float) -> float:
    """``ts`` (seconds since the epoch) clamped to [0, LATEST]; NaN becomes 0."""
    if 0.0 <= ts <= LATEST:
        return ts
    return LATEST if ts > LATEST else 0.0


def plausible_duration(seconds: float) -> float:
    """A duration clamped to [0, one day] (HAR timings, which nothing else bounds)."""
    if 0.0 <= seconds <= 86_400.0:
        return seconds
    return 86_400.0 if seconds > 86_400.0 else 0.0
