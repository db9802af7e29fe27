"""The pool a session's blocking API calls run in: bounded concurrency, and a count of the
calls started and finished, so that leaving knows whether a call may still create something
after its sweep (and sweeps a second time only then)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

Mark = tuple[int, int]
"""Calls started and calls finished, at some moment."""


class ApiPool:
    def __init__(self, size: int) -> None:
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="podtap api")
        self._lock = threading.Lock()
        self._started = 0
        self._finished = 0

    async def __call__(self, function: Callable[..., T], *args: object) -> T:
        """``await pool(function, *args)``: run a blocking call in one of the pool's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._counted, function, *args)

    def _counted(self, function: Callable[..., T], *args: object) -> T:
        with self._lock:
            self._started += 1
        try:
            return function(*args)
        finally:
            with self._lock:
                self._finished += 1

    def mark(self) -> Mark:
        with self._lock:
            return self._started, self._finished

    def ran_since(self, mark: Mark) -> bool:
        """Whether a call was running at ``mark``, or started after it."""
        started, finished = mark
        return started != finished or self.mark()[0] != started

    def drain(self) -> None:
        """Drop the calls not started; wait for the running ones (each bounded by its
        timeout)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def abandon(self) -> None:
        """Drop the calls not started; leave the running ones to finish in their threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
