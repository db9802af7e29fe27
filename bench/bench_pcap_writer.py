"""CPU per event of the pcap writer, against the JSON lines writer on the same events.

    .venv/bin/python bench/bench_pcap_writer.py [--events 100000] [--runs 5]

Two loads, each written by ``podtap record``'s two streaming writers to a stream that keeps
nothing (no system calls), batch by batch as the recording gets them:

* flood: the events bench_dump_client.py makes of an HTTP flood (DataReceived of 116 to 151
  bytes on 64 keep-alive connections, after their openings), in batches of 1,000;
* bulk: one connection whose responses are 64 KiB bodies (4 segments each in a pcap), in
  batches of 16.

CPU of this process (process_time): the median of --runs, the writers interleaved run by run,
in microseconds per event and as a multiple of the JSON lines writer's. Last, the checksum
arithmetic alone (tui.output.ones_complement) against scapy's ``checksum`` on payloads of a
few sizes, in nanoseconds per call (best of 5, as timeit advises for one small call).
"""

from __future__ import annotations

import argparse
import gc
import io
import random
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dump_client import START, Discard, flood_messages
from scapy.utils import checksum

from agent.events import ConnectionOpened, DataReceived
from agent.wire import decode_batch
from tui.model.updates import AgentEvent, Update
from tui.output.jsonl import JsonLinesWriter, RecordingHeader
from tui.output.ones_complement import checksum_of, word_sum
from tui.output.pcap import PcapFileWriter

Writer = Callable[[list[Update]], None]


def flood_batches(events: int) -> list[list[Update]]:
    return [
        [AgentEvent("local", event) for event in decode_batch(message)]
        for message in flood_messages(events)[1:]  # the Hello: no packet, no line that counts
    ]


def bulk_batches(events: int) -> list[list[Update]]:
    rng = random.Random(3)
    opened = ConnectionOpened(
        seq=1,
        ts=START,
        conn=0,
        client="10.200.0.1",
        client_port=40_000,
        server="10.200.0.2",
        server_port=8080,
    )
    bodies = [rng.randbytes(65_536) for _ in range(8)]
    updates: list[Update] = [AgentEvent("local", opened)]
    for seq in range(2, events + 2):
        data = DataReceived(seq=seq, ts=START + seq * 1e-4, conn=0, direction="out", data=b"")
        data.data = bodies[seq % len(bodies)]
        updates.append(AgentEvent("local", data))
    return [updates[start : start + 16] for start in range(0, len(updates), 16)]


def jsonl_writer() -> Writer:
    stream = io.BufferedWriter(Discard())
    writer = JsonLinesWriter(stream, RecordingHeader(podtap="bench"), flush_each_batch=False)
    return writer.write


def pcap_writer() -> Writer:
    return PcapFileWriter(io.BufferedWriter(Discard())).write_updates


def cpu_per_event(make: Callable[[], Writer], batches: list[list[Update]]) -> float:
    write = make()
    gc.collect()  # the garbage of the writer before is not this one's to collect
    start = time.process_time()
    for batch in batches:
        write(batch)
    return (time.process_time() - start) / sum(map(len, batches)) * 1e6


def compare(name: str, batches: list[list[Update]], runs: int) -> None:
    writers = {"jsonl": jsonl_writer, "pcap": pcap_writer}
    for make in writers.values():  # warm up: imports, caches, the allocator
        cpu_per_event(make, batches[:5])
    times: dict[str, list[float]] = {writer: [] for writer in writers}
    for _ in range(runs):
        for writer, make in writers.items():
            times[writer].append(cpu_per_event(make, batches))
    reference = statistics.median(times["jsonl"])
    events = sum(map(len, batches))
    print(f"{name}: {events:,} events in {len(batches)} batches, median of {runs} runs")
    print(f"  {'writer':<7} {'us/event':>9} {'min':>8} {'max':>8} {'x jsonl':>8}")
    for writer, samples in times.items():
        median = statistics.median(samples)
        print(
            f"  {writer:<7} {median:>9.3f} {min(samples):>8.3f} {max(samples):>8.3f} "
            f"{median / reference:>7.2f}x"
        )


def best_time(call: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=5))


def checksums() -> None:
    rng = random.Random(5)
    print("checksum of one payload, ns per call (best of 5)")
    print(f"  {'bytes':>7} {'podtap':>9} {'scapy':>9} {'speed-up':>9}")
    for size in (131, 1460, 16_384, 65_536):
        data = rng.randbytes(size)
        assert checksum_of(word_sum(data)) == checksum(data)
        number = max(20, 2_000_000 // size)
        ours = best_time(lambda: checksum_of(word_sum(data)), number)  # noqa: B023 (run here)
        theirs = best_time(lambda: checksum(data), number)  # noqa: B023 (run here)
        print(
            f"  {size:>7} {ours / number * 1e9:>9.0f} {theirs / number * 1e9:>9.0f} "
            f"{theirs / ours:>8.1f}x"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    compare("flood", flood_batches(args.events), args.runs)
    compare("bulk, 64 KiB bodies", bulk_batches(max(16, args.events // 200)), args.runs)
    checksums()
    return 0


if __name__ == "__main__":
    sys.exit(main())
