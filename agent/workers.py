"""Capture spread over worker processes, one PACKET_FANOUT member each, into one journal.

One Python thread tops out near one core, and under a flood reassembly is what runs out of it.
So the main process opens N captures in the target namespace, all in one fanout group (the
kernel hashes each flow to one member, both directions alike: agent.bpf.flow_hash), and forks
one worker per capture before it starts any thread. Each worker runs its own Sniffer: capture
and reassembly of its share of the connections. It sends each batch of events up a pipe as one
msgpack message (agent.wire). In the main process a merge thread renumbers connections in the
order they open (0, 1, 2, ... as with one process, whichever worker follows them), appends the
batches to the journal (which stamps ``seq``) and sums the workers' ``Stats`` into one
``Stats`` a second.

A worker that dies stops the agent with one sentence: its connections would otherwise vanish
without a word. Workers ignore SIGINT and SIGHUP (the main process decides when to stop), stop
on SIGTERM after closing their connections, and are killed by the kernel if the main process
dies first.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from types import FrameType

from agent.capture import Capture
from agent.errors import UserError
from agent.events import AnyEvent, ConnectionClosed, ConnectionOpened, DataReceived, Gap, Stats
from agent.ring_reassembly import RingReassembler
from agent.sniffer import STATS_INTERVAL, EventSink, Sniffer
from agent.wire import decode_batch, encode_batch

log = logging.getLogger("agent.workers")

PR_SET_PDEATHSIG = 1
# How long the merge thread waits for a batch before it checks whether Stats are due.
_MERGE_POLL = 0.1
EXIT_WORKER_FAILED = 1


def default_worker_count() -> int:
    """One (capture in the agent itself) below four cores, two from four on.

    Workers only pay when each can have a core: the main process then decodes every event a
    second time. On two cores shared with the service and its load, two workers saw no more
    than one process (flood 35-54% seen vs 45-56%, paced 64 96-100% vs 100%) for 20-40% more
    agent CPU, taken from the very service being watched (bench/bench_dump.py, interleaved)."""
    cores = os.cpu_count() or 1
    return 1 if cores < 4 else 2


class PipeSink:
    """The worker's end of the pipe: one message per batch of events."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def append(self, events: Sequence[AnyEvent]) -> None:
        if events:
            self._connection.send_bytes(encode_batch(events))


def summed_stats(parts: Sequence[Stats]) -> Stats:
    """One agent-wide Stats from the latest Stats of each worker (counters are cumulative)."""
    return Stats(
        ts=max((part.ts for part in parts), default=time.time()),
        packets=sum(part.packets for part in parts),
        bytes=sum(part.bytes for part in parts),
        kernel_packets=sum(part.kernel_packets for part in parts),
        kernel_drops=sum(part.kernel_drops for part in parts),
        open_connections=sum(part.open_connections for part in parts),
        gaps=sum(part.gaps for part in parts),
        gap_bytes=sum(part.gap_bytes for part in parts),
        ring_waiting=sum(part.ring_waiting for part in parts),
    )


class CaptureWorkers:
    """``captures`` (one per worker, same fanout group) read and reassembled in forked worker
    processes, their events merged into ``journal``. Build it before any thread is started:
    forking a threaded process is unsafe. The captures are handed over: the main process
    closes its copies once the workers have them."""

    def __init__(
        self,
        captures: Sequence[Capture],
        ports: frozenset[int],
        *,
        stats_interval: float = STATS_INTERVAL,
    ) -> None:
        self._stats_interval = stats_interval
        self._stopping = threading.Event()
        self._latest: dict[int, Stats] = {}
        self._next_id = 0
        self._pipes: dict[Connection, int] = {}
        self._journal: EventSink | None = None
        self._on_failure: Callable[[BaseException], None] | None = None
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.failure: BaseException | None = None
        context = multiprocessing.get_context("fork")
        count = len(captures)
        try:
            for index in range(count):
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(
                    target=_work,
                    args=(
                        os.getpid(),
                        index,
                        captures,
                        ports,
                        writer,
                        list(self._pipes),
                        stats_interval,
                    ),
                    name=f"podtap-capture-{index}",
                    daemon=True,
                )
                process.start()
                # Closed at once: a later worker must not inherit this writer, or this
                # worker's death would never read as end-of-file here.
                writer.close()
                self._pipes[reader] = index
                self.processes.append(process)
        except BaseException:
            self._terminate()
            raise
        finally:
            for capture in captures:
                capture.close()
        self._thread = threading.Thread(target=self._merge, name="podtap-merge", daemon=True)

    def start(
        self, journal: EventSink, on_failure: Callable[[BaseException], None] | None = None
    ) -> None:
        """Merge the workers' events into ``journal`` from now on; ``on_failure`` is called
        (from the merge thread) if a worker dies or merging fails."""
        self._journal = journal
        self._on_failure = on_failure
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask every worker to close its connections and send its last events, wait for them
        to be journaled, then for the workers to exit (killing those that do not)."""
        self._stopping.set()
        self._terminate()
        if self._thread.is_alive():
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)

    def _terminate(self) -> None:
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def _merge(self) -> None:
        journal, latest, pipes = self._journal, self._latest, dict(self._pipes)
        assert journal is not None
        ids: list[dict[int, int]] = [{} for _ in self.processes]
        next_tick = time.monotonic() + self._stats_interval
        try:
            while pipes:
                # Everything ready goes to the journal in one append: one wake-up of the
                # event loop per round rather than one per worker message.
                merged: list[AnyEvent] = []
                for ready in wait(list(pipes), _MERGE_POLL):
                    assert isinstance(ready, Connection)
                    try:
                        message = ready.recv_bytes()
                    except EOFError:
                        self._worker_ended(pipes.pop(ready))
                        ready.close()
                        continue
                    events = decode_batch(message)
                    # A worker's Stats only ever end a batch (agent.sniffer journals them last).
                    index = pipes[ready]
                    last = events[-1] if events else None
                    if isinstance(last, Stats):
                        latest[index] = last
                        events.pop()
                    self._renumber(events, ids[index])
                    merged += events
                if time.monotonic() >= next_tick and latest:
                    merged.append(summed_stats(list(latest.values())))
                    next_tick = time.monotonic() + self._stats_interval
                journal.append(merged)
            if latest:
                journal.append([summed_stats(list(latest.values()))])
        except BaseException as error:
            self._fail(error)

    def _renumber(self, events: list[AnyEvent], ids: dict[int, int]) -> None:
        """Give the connections of one worker's batch their agent-wide ids, in place.
        ``ids`` maps that worker's open connections to theirs."""
        for event in events:
            if isinstance(event, DataReceived | Gap):
                event.conn = ids[event.conn]
            elif isinstance(event, ConnectionOpened):
                ids[event.conn] = event.conn = self._next_id
                self._next_id += 1
            elif isinstance(event, ConnectionClosed):
                event.conn = ids.pop(event.conn)

    def _worker_ended(self, index: int) -> None:
        if self._stopping.is_set():
            return
        process = self.processes[index]
        process.join(1.0)
        code = process.exitcode
        if code is not None and code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
        elif code is not None:
            how = f"exited with status {code}"
        else:
            how = "closed its pipe"
        self._fail(
            UserError(
                f"Capture worker {index + 1} of {len(self.processes)} (pid {process.pid}) {how}; "
                "the agent stops, as that worker's connections can no longer be followed."
            )
        )

    def _fail(self, error: BaseException) -> None:
        if self.failure is not None:
            return
        self.failure = error
        if isinstance(error, UserError):
            log.error("%s", error)
        else:
            log.error("merging the capture workers' events failed", exc_info=error)
        if self._on_failure is not None:
            self._on_failure(error)


def _work(
    parent: int,
    index: int,
    captures: Sequence[Capture],
    ports: frozenset[int],
    writer: Connection,
    inherited_readers: Sequence[Connection],
    stats_interval: float,
) -> None:
    """The body of worker ``index``: runs in the forked process until SIGTERM."""
    # The main process's event loop may have left its wake-up pipe set for signals: a signal
    # here must not be written into it and read there as the main process's own.
    signal.set_wakeup_fd(-1)
    stopping = threading.Event()

    def on_terminate(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_terminate)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _die_with_parent(parent)
    for reader in inherited_readers:
        reader.close()
    for other, capture in enumerate(captures):
        if other != index:
            capture.close()
    capture = captures[index]
    reassembler = RingReassembler(ports)
    sniffer = Sniffer(capture, reassembler, PipeSink(writer), stats_interval=stats_interval)
    sniffer.start()
    while sniffer.running and not stopping.wait(0.2):
        pass
    sniffer.stop()
    writer.close()
    capture.close()
    if sniffer.failure is not None:
        os._exit(EXIT_WORKER_FAILED)


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this worker if the main process dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent was already gone before prctl took effect
        os._exit(EXIT_WORKER_FAILED)
