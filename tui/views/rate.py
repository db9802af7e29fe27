"""Events per second over a sliding window, from counts sampled by the refresh timer."""

from __future__ import annotations

from collections import deque


class RateMeter:
    """Feed it ``(now, cumulative count)`` samples; it answers the rate over ``window`` s.

    The clock is the caller's, so a frozen clock (tests, screenshots) gives a steady figure.
    """

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float, total: int) -> None:
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    @property
    def per_second(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0

    def reset(self) -> None:
        self._samples.clear()
