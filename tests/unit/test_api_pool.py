"""The session's pool of API calls tells whether a call was running at some moment or started
after it: leaving sweeps a second time only then."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tui.sources.kube.api_pool import ApiPool

pytestmark = pytest.mark.timeout(10)


async def test_a_call_running_at_the_mark_is_seen_even_once_it_is_over() -> None:
    pool = ApiPool(2)
    started, release = threading.Event(), threading.Event()

    def call() -> bool:
        started.set()
        return release.wait(5)

    running = asyncio.ensure_future(pool(call))
    assert await asyncio.to_thread(started.wait, 5)
    mark = pool.mark()
    assert mark == (1, 0)
    release.set()
    assert await running is True
    pool.drain()
    assert pool.ran_since(mark)


async def test_a_call_started_after_the_mark_is_seen() -> None:
    pool = ApiPool(2)
    mark = pool.mark()
    assert not pool.ran_since(mark)
    assert await pool(sum, [1, 2]) == 3
    assert pool.ran_since(mark)


async def test_no_call_since_the_mark_means_none_is_seen() -> None:
    pool = ApiPool(2)
    assert await pool(sum, [1, 2]) == 3
    mark = pool.mark()
    pool.drain()
    assert not pool.ran_since(mark)


async def test_a_call_that_raises_still_counts_as_finished() -> None:
    pool = ApiPool(1)
    with pytest.raises(ZeroDivisionError):
        await pool(divmod, 1, 0)
    assert pool.mark() == (1, 1)
