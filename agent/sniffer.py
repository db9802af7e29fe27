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
from mmap import mmap
from typing import Protocol, runtime_checkable

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


class BlockParser(Protocol):
    """Reads a capture ring block's frames into ``out`` (agent.capture.BlockParser)."""

    def __call__(
        self,
        ring: mmap | bytes,
        offset: int,
        count: int,
        interface_name: Callable[[int], str],
        loopbacks: frozenset[int],
        out: list[AnyEvent],
    ) -> int: ...


@runtime_checkable
class BlockSource(SegmentSource, Protocol):
    """A source that hands its ring blocks to a parser (agent.capture.Capture)."""

    def read_blocks(self, timeout: float, parse: BlockParser) -> list[AnyEvent]: ...


@runtime_checkable
class BlockReassembler(StreamReassembler, Protocol):
    """A reassembler that reads ring blocks itself (agent.ring_reassembly.RingReassembler):
    with a BlockSource, frames go from the ring to events in one loop."""

    segments: int

    def feed_block(
        self,
        ring: mmap | bytes,
        offset: int,
        count: int,
        interface_name: Callable[[int], str],
        loopbacks: frozenset[int],
        out: list[AnyEvent],
    ) -> int: ...


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

    def _read_events(self) -> Callable[[], list[AnyEvent]]:
        """How the loop reads the capture, once per turn, as events: straight from the ring
        blocks when both ends can (see agent.ring_reassembly), else frames, then reassembled."""
        source, reassembler = self._source, self._reassembler
        if isinstance(source, BlockSource) and isinstance(reassembler, BlockReassembler):
            read_blocks, feed_block = source.read_blocks, reassembler.feed_block

            def read_blocks_as_events() -> list[AnyEvent]:
                before = reassembler.segments
                events = read_blocks(READ_TIMEOUT, feed_block)
                self.packets += reassembler.segments - before
                return events

            return read_blocks_as_events
        read_frames, feed_frames = source.read_frames, reassembler.feed_frames

        def read_frames_as_events() -> list[AnyEvent]:
            frames = read_frames(READ_TIMEOUT)
            self.packets += len(frames)
            return feed_frames(frames)

        return read_frames_as_events

    def _capture_until_stopped(self) -> None:
        reassembler, journal = self._reassembler, self._journal
        read_events = self._read_events()
        next_tick = self._clock() + self._stats_interval
        while not self._stopping.is_set():
            events = read_events()
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
