"""The latency sketch against exact percentiles: within its stated relative error."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui.model.quantiles import QuantileSketch

pytestmark = pytest.mark.timeout(60)

QS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def assert_within_bound(sketch: QuantileSketch, values: list[float]) -> None:
    bound = sketch.relative_error
    for q, estimate in zip(QS, sketch.quantiles(QS), strict=True):
        truth = exact(values, q)
        assert estimate is not None
        if truth <= sketch.min_value:
            assert abs(estimate - truth) <= sketch.min_value
        else:
            assert abs(estimate - truth) <= bound * truth * (1 + 1e-9), (q, estimate, truth)


@given(st.lists(st.floats(min_value=0.0, max_value=86_400_000.0), min_size=1, max_size=400))
def test_any_latencies_within_the_bound(values: list[float]) -> None:
    sketch = QuantileSketch()
    for value in values:
        sketch.add(value)
    assert_within_bound(sketch, values)


@pytest.mark.parametrize("relative_error", [0.005, 0.01, 0.05])
def test_a_long_tailed_stream(relative_error: float) -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(2.0, 1.5) for _ in range(100_000)]
    sketch = QuantileSketch(relative_error)
    for value in values:
        sketch.add(value)
    assert_within_bound(sketch, values)
    assert sketch.count == len(values)


def test_memory_is_bounded() -> None:
    sketch = QuantileSketch(0.01, max_buckets=100)
    for exponent in range(-3, 300):
        sketch.add(10.0**exponent)
    assert sketch.buckets <= 101
    # The high quantiles keep the bound after the lowest buckets merged.
    top = sketch.quantile(1.0)
    assert top is not None
    assert abs(top - 1e299) <= 0.01 * 1e299


def test_empty_and_odd_input() -> None:
    sketch = QuantileSketch()
    assert sketch.quantile(0.5) is None
    sketch.add(math.nan)
    assert sketch.quantile(0.5) is None
    sketch.add(5.0)
    assert sketch.quantiles((0.5, 2.0, -1.0)) == [5.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="relative_error"):
        QuantileSketch(1.5)
