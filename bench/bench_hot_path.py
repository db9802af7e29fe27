"""CPU cost per frame of a capture worker's whole path: ring -> parse -> reassembly -> msgpack.

wrk floods nginx in a lab namespace for --fill seconds while a Capture is open and nobody reads
it, so the ring fills with real traffic (requests, responses, SYNs, FINs). The ring's ready
blocks are then copied out, and replayed --runs times through a Sniffer exactly as a capture
worker runs it (agent.workers: events encoded with agent.wire and written to a pipe, here one
that is read and discarded), from a Capture whose ring is that copy. The figure is the CPU time
of the Sniffer's thread per frame; the fastest run is the one least disturbed by whatever else
the machine runs (the median is printed too).

While the ring fills, tcpdump captures the same flood with a filter that passes the same
segments; its CPU per frame (scheduler time, nanoseconds) is the reference: the path's cost is
printed as a multiple of it, and both per request (frames per request counted in the
recording). tcpdump does no reassembly and no encoding: the ratio is what podtap's pure-Python
path costs over a C capture loop that only copies frames out.

With ``--sink journal`` the Sniffer appends to a Journal instead, as the agent does when it
captures in its own process (below four cores: agent.workers.default_worker_count), and a
reader thread drains the journal as the server does for one client (reads of
agent.server.BATCH_EVENTS and BATCH_BYTES, each encoded with agent.wire); the figure is then
the CPU of both threads per frame.

    .venv/bin/python bench/bench_hot_path.py [--runs 7] [--fill 1] [--save F | --load F]
        [--sink pipe|journal]

--save keeps the recorded blocks in a file and --load replays them instead of recording, so
that two versions of the code can be compared on the very same frames.
"""

from __future__ import annotations

import argparse
import mmap
import os
import pickle
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.capture import TP_STATUS_USER, Capture, frames_of_block
from agent.cli import raise_young_collection_threshold
from agent.journal import Journal
from agent.netns import named_namespace
from agent.packet import Frame
from agent.ring_reassembly import RingReassembler
from agent.server import BATCH_BYTES, BATCH_EVENTS
from agent.sniffer import EventSink, Sniffer
from agent.wire import encode_batch
from agent.workers import PipeSink
from bench.bench_capture import PORT, TCPDUMP_FILTER, nginx, wrk
from bench.bench_dump import cpu_seconds
from tests.netlab import network_lab

_STATUS = struct.Struct("=8xI")
_BLOCK = struct.Struct("=8xIII")  # block status, frames, offset of the first
BLOCK_SIZE = 1 << 20


class ReplayedCapture(Capture):
    """A Capture reading a copy of ready ring blocks instead of a live ring."""

    def __init__(self, blocks: list[bytes], names: dict[int, str]) -> None:  # no super(): no socket
        # Anonymous memory reads like the ring (slices are bytes); an empty block ends it.
        self._ring = mmap.mmap(-1, (len(blocks) + 1) * BLOCK_SIZE)
        self._ring.write(b"".join(blocks))
        self._block_size = BLOCK_SIZE
        self._block_count = len(blocks) + 1
        self._block = 0
        self._names = dict(names)
        self._loopbacks = frozenset(i for i, name in names.items() if name == "lo")
        self._poll = select.poll()
        self.frames = 0
        self.blocks = 0
        self.truncated = 0

    def kernel_counters(self) -> tuple[int, int]:
        return self.frames, 0

    def waiting(self) -> int:
        return 0

    def close(self) -> None:
        pass


@dataclass
class Recording:
    """Ring blocks that captured a flood, and what tcpdump spent on the same flood."""

    blocks: list[bytes]
    names: dict[int, str]
    tcpdump_us_per_frame: float


def record(fill: float) -> Recording:
    """Ready blocks of a ring that captured ``fill`` seconds of flood, while tcpdump (with a
    filter that passes the same segments as podtap's) captured it too."""
    with network_lab("ph") as lab, nginx(lab):
        capture = Capture(named_namespace(lab.name), [PORT], block_count=128)
        tcpdump = lab.popen(
            ["tcpdump", "-i", "any", "-n", "-B", "16384", "-w", "/dev/null", TCPDUMP_FILTER],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        with capture:
            time.sleep(1.5)  # tcpdump is listening
            start = cpu_seconds(tcpdump.pid)
            wrk(lab, fill)
            time.sleep(0.1)  # let the ring retire its last, partly filled block
            tcpdump_cpu = cpu_seconds(tcpdump.pid) - start
            tcpdump.send_signal(signal.SIGINT)
            _, said = tcpdump.communicate(timeout=10)
            captured = re.search(rb"(\d+) packets? captured", said)
            blocks = []
            for index in range(128):
                block = bytes(capture._ring[index * BLOCK_SIZE : (index + 1) * BLOCK_SIZE])
                if not _STATUS.unpack_from(block)[0] & TP_STATUS_USER:
                    break
                blocks.append(block)
            frames = int(captured[1]) if captured else 0
            per_frame = tcpdump_cpu / frames * 1e6 if frames else float("nan")
            return Recording(blocks, dict(capture._names), per_frame)


def frames_per_request(recording: Recording) -> float:
    """Frames in the recording per request in it (a segment that starts one)."""
    frames: list[Frame] = []
    for block in recording.blocks:
        _, count, first = _BLOCK.unpack_from(block)
        frames_of_block(block, first, count, lambda ifindex: "", frozenset(), frames)
    requests = sum(1 for frame in frames if frame[6].startswith(b"GET "))
    return len(frames) / requests if requests else float("nan")


def replay(blocks: list[bytes], names: dict[int, str], sink: str = "pipe") -> tuple[float, int]:
    """(microseconds of CPU per frame, frames) for one pass over ``blocks``, with the events
    sent down a pipe (a capture worker) or journaled and read back (the agent's own capture)."""
    capture = ReplayedCapture(blocks, names)
    total = sum(struct.unpack_from("=12xI", block)[0] for block in blocks)
    events: EventSink
    reader_cpu: list[float] = []  # what the journal's reader spent, once it has ended
    if sink == "journal":
        journal = Journal()
        appended, done = threading.Event(), threading.Event()
        journal.set_listener(appended.set)
        drain = _journal_reader(journal, appended, done, reader_cpu)
        events = journal

        def finish() -> None:
            done.set()
            appended.set()

    else:
        reader, writer = Pipe(duplex=False)
        events, drain, finish = PipeSink(writer), _discarder(reader), writer.close
    draining = threading.Thread(target=drain, daemon=True)
    draining.start()
    sniffer = Sniffer(capture, RingReassembler(frozenset({PORT})), events)
    sniffer.start()
    (thread,) = [t for t in threading.enumerate() if t.name == "podtap-capture"]
    assert thread.ident is not None
    clock = time.pthread_getcpuclockid(thread.ident)
    while capture.frames < total:
        time.sleep(0.01)
    elapsed = time.clock_gettime(clock)
    sniffer.stop()
    finish()
    draining.join(5)
    # The pipe's reader stands for the main process; a journal's reader is the agent's own.
    elapsed += sum(reader_cpu)
    return elapsed / total * 1e6, total


def _discarder(reader: Connection) -> Callable[[], None]:
    def discard() -> None:
        try:
            while True:
                reader.recv_bytes()
        except EOFError:
            pass

    return discard


def _journal_reader(
    journal: Journal, appended: threading.Event, done: threading.Event, cpu: list[float]
) -> Callable[[], None]:
    """What the server does for one client: read batches after its cursor and encode them,
    until ``done`` and nothing is left; its CPU time then goes to ``cpu``."""

    def read() -> None:
        cursor = 0
        while True:
            events = journal.read(cursor, BATCH_EVENTS, BATCH_BYTES)
            if events:
                cursor = events[-1].seq
                encode_batch(events)
            elif done.is_set():
                break
            else:
                appended.wait(0.1)
                appended.clear()
        cpu.append(time.thread_time())

    return read


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--fill", type=float, default=1.0, help="seconds of flood to capture")
    parser.add_argument("--save", type=Path, help="keep the recorded ring blocks here")
    parser.add_argument("--load", type=Path, help="replay blocks saved earlier")
    parser.add_argument(
        "--sink",
        choices=("pipe", "journal"),
        default="pipe",
        help="pipe: a capture worker's path; journal: the agent capturing in its own process",
    )
    args = parser.parse_args()
    raise_young_collection_threshold()  # as the agent does before it forks its workers
    if args.load:
        recording = Recording(*pickle.loads(args.load.read_bytes()))
    else:
        if os.geteuid() != 0:
            raise SystemExit("bench: needs root (network namespaces and packet capture)")
        recording = record(args.fill)
        if args.save:
            saved = (recording.blocks, recording.names, recording.tcpdump_us_per_frame)
            args.save.write_bytes(pickle.dumps(saved))
    costs = []
    for _ in range(args.runs):
        cost, frames = replay(recording.blocks, recording.names, args.sink)
        costs.append(cost)
        print(f"  {frames} frames: {cost:.2f} us/frame", file=sys.stderr, flush=True)
    best, median = min(costs), statistics.median(costs)
    tcpdump = recording.tcpdump_us_per_frame
    per_request = frames_per_request(recording)
    path = (
        "capture worker path (read, parse, reassemble, encode)"
        if args.sink == "pipe"
        else "agent's own capture (read, parse, reassemble, journal, read back, encode)"
    )
    print(
        f"{path}: {best:.2f} us of CPU per "
        f"frame at best, {median:.2f} median of {args.runs}; {1e6 / best:,.0f} frames per "
        "CPU second"
    )
    print(
        f"tcpdump on the same flood, same segments: {tcpdump:.3f} us per frame; podtap's path "
        f"costs {median / tcpdump:.1f}x that (median run); per request ({per_request:.2f} "
        f"frames each): podtap {median * per_request:.2f} us, tcpdump "
        f"{tcpdump * per_request:.2f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
