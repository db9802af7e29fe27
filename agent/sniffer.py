"""The capture thread: packets in, journaled events out.

It reads batches of segments from the capture socket, feeds them to the reassembler and appends
whatever comes out to the journal in one go per batch. Once a second it also expires idle
connections and journals a ``Stats`` event. It never touches the network clients: appending to
the journal is all it does, so no client can slow it down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from agent.errors import UserError
from agent.events import AnyEvent, Stats
from agent.packet import Frame

log = logging.getLogger("agent.sniffer")

STATS_INTERVAL = 1.0
# How long one read may block: the longest the thread takes to notice it should stop.
READ_TIMEOUT = 0.1


class SegmentSource(Protocol):
    """What the sniffer needs from a capture (agent.capture.Capture)."""

    def read_frames(self, timeout: float) -> list[Frame]: ...

    def kernel_counters(self) -> tuple[int, int]: ...

    def waiting(self) -> int: ...


class StreamReassembler(Protocol):
    """What the sniffer needs from a reassembler (agent.tcp.Reassembler)."""

    @property
    def gaps(self) -> int: ...

    @property
    def gap_bytes(self) -> int: ...

    @property
    def payload_bytes(self) -> int: ...

    @property
    def open_connections(self) -> int: ...

    def feed_frames(self, frames: list[Frame]) -> list[AnyEvent]: ...

    def expire(self, now: float) -> list[AnyEvent]: ...

    def close_all(self, now: float) -> list[AnyEvent]: ...


class EventSink(Protocol):
    """Where the sniffer puts its events: the journal (agent.journal.Journal), or the pipe to
    the main process when it runs in a capture worker (agent.workers)."""

    def append(self, events: Sequence[AnyEvent]) -> None: ...


class Sniffer:
    """Runs capture -> reassembly -> journal in a thread of its own until :meth:`stop`."""

    def __init__(
        self,
        source: SegmentSource,
        reassembler: StreamReassembler,
        journal: EventSink,
        *,
        on_failure: Callable[[BaseException], None] | None = None,
        stats_interval: float = STATS_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._reassembler = reassembler
        self._journal = journal
        self._on_failure = on_failure
        self._stats_interval = stats_interval
        self._clock = clock
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="podtap-capture", daemon=True)
        self.packets = 0
        self.failure: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading, close every connection (reason "shutdown") and journal a last Stats."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._capture_until_stopped()
            now = self._clock()
            closing = self._reassembler.close_all(now)
            closing.append(self._stats(now))
            self._journal.append(closing)
        except BaseException as error:
            self.failure = error
            if isinstance(error, UserError):
                log.error("%s", error)
            else:
                log.exception("capture failed")
            if self._on_failure is not None:
                self._on_failure(error)

    def _capture_until_stopped(self) -> None:
        source, reassembler, journal = self._source, self._reassembler, self._journal
        read_frames, feed_frames = source.read_frames, reassembler.feed_frames
        next_tick = self._clock() + self._stats_interval
        while not self._stopping.is_set():
            frames = read_frames(READ_TIMEOUT)
            events = feed_frames(frames)
            self.packets += len(frames)
            now = self._clock()
            if now >= next_tick:
                events += reassembler.expire(now)
                events.append(self._stats(now))
                next_tick = now + self._stats_interval
            journal.append(events)

    def _stats(self, now: float) -> Stats:
        kernel_packets, kernel_drops = self._source.kernel_counters()
        reassembler = self._reassembler
        return Stats(
            ts=now,
            packets=self.packets,
            bytes=reassembler.payload_bytes,
            kernel_packets=kernel_packets,
            kernel_drops=kernel_drops,
            open_connections=reassembler.open_connections,
            gaps=reassembler.gaps,
            gap_bytes=reassembler.gap_bytes,
            ring_waiting=self._source.waiting(),
        )
