"""A streaming quantile sketch for latencies: bounded memory, a stated error bound.

Values are counted in buckets whose bounds grow geometrically by ``gamma = (1 + a) / (1 - a)``
(``a`` is ``relative_error``): bucket ``i`` holds the values in ``(gamma^(i-1), gamma^i]``
and answers for them with ``2 gamma^i / (gamma + 1)``, which is within ``a`` (relative) of every
value in the bucket. So:

    |quantile(q) - x| <= a * x

where ``x`` is the exact value at rank ``floor(q * (n - 1))`` (0-based) of the sorted values
added, as long as the sketch has not had to merge buckets. Values at or below ``min_value``
share one bucket and read as 0 (absolute error at most ``min_value``).

With the defaults (1 %, 1 µs floor) the latencies from 1 µs to a day take at most about 1,300
buckets, under ``max_buckets`` (2,048): the bound holds for any latency an exchange can have.
Past ``max_buckets`` (only for values spread over a wider range) the lowest buckets are merged
upwards, which keeps memory bounded and the bound intact for the high quantiles people read
(p50, p95, p99) while low ones lose precision.

This is the idea of DDSketch (Masson, Rim, Lee, VLDB 2019), written for this use.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence


class QuantileSketch:
    def __init__(
        self,
        relative_error: float = 0.01,
        *,
        min_value: float = 0.001,
        max_buckets: int = 2048,
    ) -> None:
        if not 0 < relative_error < 1:
            raise ValueError("relative_error must be between 0 and 1")
        self.relative_error = relative_error
        self.min_value = min_value
        self.max_buckets = max_buckets
        self._gamma = (1 + relative_error) / (1 - relative_error)
        self._log_gamma = math.log(self._gamma)
        self._counts: dict[int, int] = {}
        self._keys: list[int] = []
        """The bucket indexes in use, sorted (kept so that queries need no sort)."""
        self._zeros = 0
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float) -> None:
        if math.isnan(value):
            return
        self.count += 1
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if value <= self.min_value:
            self._zeros += 1
            return
        index = math.ceil(math.log(value) / self._log_gamma)
        counts = self._counts
        if index in counts:
            counts[index] += 1
            return
        counts[index] = 1
        bisect.insort(self._keys, index)
        if len(self._keys) > self.max_buckets:
            self._merge_lowest()

    def _merge_lowest(self) -> None:
        lowest = self._keys.pop(0)
        self._counts[self._keys[0]] += self._counts.pop(lowest)

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0 to 1), or None when nothing was added."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """Several quantiles in one walk over the buckets (``qs`` in any order)."""
        if not self.count:
            return [None] * len(qs)
        ranks = sorted(
            (math.floor(min(max(q, 0.0), 1.0) * (self.count - 1)), i) for i, q in enumerate(qs)
        )
        found: list[float | None] = [None] * len(qs)
        seen = self._zeros
        position = 0
        while position < len(ranks) and ranks[position][0] < seen:
            found[ranks[position][1]] = self._clamped(0.0)
            position += 1
        for key in self._keys:
            seen += self._counts[key]
            estimate = 2 * self._gamma**key / (self._gamma + 1)
            while position < len(ranks) and ranks[position][0] < seen:
                found[ranks[position][1]] = self._clamped(estimate)
                position += 1
        return found

    def _clamped(self, estimate: float) -> float:
        # The true value lies within [min, max]: clamping can only bring the estimate closer.
        return min(max(estimate, self.min), self.max)

    @property
    def buckets(self) -> int:
        """Memory in use, in buckets (each an int key and an int count)."""
        return len(self._keys) + (1 if self._zeros else 0)
