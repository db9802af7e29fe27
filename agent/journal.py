"""The journal: the agent's bounded memory of recent events, shared by every client.

The capture thread appends; websocket senders on the asyncio loop read "events after seq S".
Each event gets its ``seq`` (1, 2, 3, ...) when appended. The journal keeps at most
``max_events`` events and ``max_bytes`` bytes of captured data, dropping the oldest first; a
reader whose position has been dropped is told how many events it missed (``EventsLost``) and
continues from the oldest event still held. Appending never waits for a reader: the lock is only
held for list operations, never across I/O.

Each event's data is sized once, when it is appended: beside the events the journal keeps their
sizes, which dropping the oldest and cutting a read to a byte bound sum in C (a slice and
``sum``) instead of another pass in Python over every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from itertools import accumulate, repeat

from agent.events import AnyEvent, DataReceived, EventsLost, LostReason, Stats

DEFAULT_MAX_EVENTS = 200_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

# Dropped events leave a dead prefix in the list; it is cut off in one go once it is both large
# and at least half the list, so that dropping stays O(1) amortised per event.
_COMPACT_AT = 4096

_FIRST_WINDOW = 64
"""Sizes summed at first when the journal is over its byte bound (see _oldest_holding)."""


class Journal:
    def __init__(
        self, max_events: int = DEFAULT_MAX_EVENTS, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("a journal must hold at least one event and one byte")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._events: list[AnyEvent] = []
        self._sizes: list[int] = []  # the data size of each event, index for index
        self._bytes = 0  # of the events held
        self._head = 0  # index in _events of the oldest event still held
        self._oldest_seq = 1  # seq of _events[_head], or _next_seq when nothing is held
        self._next_seq = 1
        self._listener: Callable[[], None] | None = None
        self.latest_stats: Stats | None = None
        """The newest ``Stats`` appended (capture threads append them last in a batch)."""

    @property
    def oldest_seq(self) -> int:
        """Seq of the oldest event held (equal to ``next_seq`` when the journal is empty)."""
        return self._oldest_seq

    @property
    def next_seq(self) -> int:
        """Seq the next appended event will get."""
        return self._next_seq

    @property
    def last_seq(self) -> int:
        """Seq of the newest event appended so far, 0 before the first."""
        return self._next_seq - 1

    @property
    def held_events(self) -> int:
        return len(self._events) - self._head

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        """``listener`` is called (from the appending thread) after every non-empty append."""
        self._listener = listener

    def append(self, events: Sequence[AnyEvent]) -> None:
        """Stamp ``events`` with the next seqs and keep them, dropping the oldest if needed."""
        if not events:
            return
        with self._lock:
            seq = self._next_seq + len(events)
            # Stamped by a loop in C: under a flood this is once per captured segment.
            deque(map(setattr, events, repeat("seq"), range(self._next_seq, seq)), maxlen=0)
            self._events.extend(events)
            sizes = [len(event.data) if type(event) is DataReceived else 0 for event in events]
            self._sizes += sizes
            self._bytes += sum(sizes)
            self._next_seq = seq
            if type(events[-1]) is Stats:
                self.latest_stats = events[-1]
            self._drop_oldest()
        listener = self._listener
        if listener is not None:
            listener()

    def _drop_oldest(self) -> None:
        events, sizes = self._events, self._sizes
        head = self._head
        # A full journal drops as many events as it gains: in one go, not one by one.
        excess = len(events) - head - self.max_events
        if excess > 0:
            self._bytes -= sum(sizes[head : head + excess])
            head += excess
        over = self._bytes - self.max_bytes
        if over > 0:
            dropped, freed = _oldest_holding(sizes, head, over)
            head += dropped
            self._bytes -= freed
        if head >= _COMPACT_AT and head * 2 >= len(events):
            del events[:head]
            del sizes[:head]
            head = 0
        self._head = head
        self._oldest_seq = self._next_seq - (len(events) - head)

    def read(
        self,
        after: int,
        max_events: int = 1000,
        max_bytes: int = 1024 * 1024,
        lost_reason: LostReason = "journal",
    ) -> list[AnyEvent]:
        """The events with seq > ``after``, oldest first, at most ``max_events`` of them and
        (except for a single larger event) at most ``max_bytes`` of data.

        If some of them are no longer held, the answer starts with one ``EventsLost`` for the
        missing range (its ``seq`` is the last missing seq, so a reader that resumes after it
        is not told twice), followed by the oldest events held. Empty when nothing is newer.
        """
        start = max(after, 0) + 1
        with self._lock:
            oldest = self._oldest_seq
            lost: EventsLost | None = None
            if start < oldest:
                lost = EventsLost(
                    seq=oldest - 1,
                    ts=time.time(),
                    first_seq=start,
                    count=oldest - start,
                    reason=lost_reason,
                )
                start = oldest
            index = self._head + (start - oldest)
            chunk = self._events[index : index + max_events]
            sizes = self._sizes[index : index + len(chunk)]
        if sum(sizes) > max_bytes:
            # The longest start within max_bytes, and never less than one event.
            fits = bisect_right(list(accumulate(sizes)), max_bytes)
            del chunk[max(fits, 1) :]
        if lost is not None:
            chunk.insert(0, lost)
        return chunk


def _oldest_holding(sizes: list[int], head: int, needed: int) -> tuple[int, int]:
    """How many events from ``head`` on hold at least ``needed`` bytes (all there are, if
    they hold less), and the bytes they hold. Under a flood of large responses the journal is
    bound by bytes and drops as many events as it gains: their sizes are summed in C, in
    windows that double, rather than one by one in Python (6% of the agent's CPU)."""
    counted = freed = 0
    window = _FIRST_WINDOW
    while head + counted < len(sizes):
        start = head + counted
        totals = list(accumulate(sizes[start : start + window]))
        found = bisect_left(totals, needed - freed)
        if found < len(totals):
            return counted + found + 1, freed + totals[found]
        counted += len(totals)
        freed += totals[-1]
        window *= 2
    return counted, freed


class AppendSignal:
    """Wakes readers on an asyncio loop when another thread appends to the journal.

    ``notify`` may be called from any thread, as often as it likes: while one wake-up is
    already scheduled on the loop, further calls do nothing, so a busy capture thread costs the
    loop one callback per burst rather than one per batch.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self._scheduled = False

    def notify(self) -> None:
        if self._scheduled:
            return
        self._scheduled = True
        # RuntimeError: the loop is closed, nobody is left to wake.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._wake)

    def wake(self) -> None:
        """Wake every waiting reader now (call it on the loop)."""
        self._wake()

    def _wake(self) -> None:
        # Cleared before readers run, so that an append during their read schedules a new wake.
        self._scheduled = False
        self._event.set()
        self._event.clear()

    async def wait(self) -> None:
        await self._event.wait()
