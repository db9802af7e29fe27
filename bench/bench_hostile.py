"""Benchmark: what hostile traffic costs the client, against ordinary traffic of the same size.

    .venv/bin/python bench/bench_hostile.py [--size 1000000] [--runs 3] [--only NAME,...]

Each input is --size bytes sent to the tapped server (and, for responses, back from it),
cut into 1,448-byte segments as TCP carries them, and fed to a fresh Store (the decoder, the
header inventory and the filtered view: what the app runs per event). Inputs:

* ordinary: keep-alive GETs with a few headers, each answered by a small 200 (the reference);
* request_lines: a malformed head made of ``GET / HTTP/1.1`` lines and no blank line;
* continues: one upload answered by ``100 Continue`` responses, over and over;
* header_names: requests with fifty header names never seen before, each;
* big_head: one head that never ends (a header line after another);
* ambiguous: requests with ``Content-Length`` and ``Transfer-Encoding: chunked`` both, and
  requests with two different Content-Lengths;
* bodies: uploads of 60 KiB each (the body budget);
* tiny_segments / tiny_ordinary: a request line that never ends, and ordinary requests, both in
  1-byte segments (the resync scan; its reference is ordinary traffic in 1-byte segments,
  at a tenth of --size: a million events cost the store more than any decoding).

Each input runs in a forked process of its own: CPU time of the feeding (the median of --runs),
and how much the process's resident memory grew. The ratio is against ``ordinary`` (the tiny
inputs: against ``tiny_ordinary``) in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.events import AnyEvent, ConnectionOpened, DataReceived
from tui.model.store import Store
from tui.model.updates import AgentEvent, Update

SEGMENT = 1448
BATCH = 1000
Direction = Literal["in", "out"]
Piece = tuple[Direction, bytes]


def ordinary(size: int) -> Iterator[Piece]:
    sent = 0
    n = 0
    while sent < size:
        request = (
            f"GET /api/items/{n} HTTP/1.1\r\nHost: shop.example\r\n"
            f"User-Agent: bench/1.0\r\nAccept: application/json\r\n"
            f"X-Request-Id: {n:08d}\r\n\r\n"
        ).encode()
        yield "in", request
        yield (
            "out",
            (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"),
        )
        sent += len(request)
        n += 1


def request_lines(size: int) -> Iterator[Piece]:
    yield "in", b"GET / HTTP/1.1\r\n" * (size // 16)


def continues(size: int) -> Iterator[Piece]:
    yield (
        "in",
        (b"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"),
    )
    yield "out", b"HTTP/1.1 100 Continue\r\n\r\n" * (size // 25)


def header_names(size: int) -> Iterator[Piece]:
    sent = 0
    n = 0
    while sent < size:
        fields = "".join(f"X-Name-{n}-{k}: v\r\n" for k in range(50))
        request = f"GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n".encode()
        yield "in", request
        yield "out", b"HTTP/1.1 204 No Content\r\n\r\n"
        sent += len(request)
        n += 1


def big_head(size: int) -> Iterator[Piece]:
    yield "in", b"GET / HTTP/1.1\r\n" + b"X-Filler: aaaaaaaaaaaaaaaaaaaa\r\n" * (size // 32)


def ambiguous(size: int) -> Iterator[Piece]:
    both = (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    twice = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc"
    for _ in range(size // (len(both) + len(twice))):
        yield "in", both
        yield "out", b"HTTP/1.1 204 No Content\r\n\r\n"
        yield "in", twice
        yield "out", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def bodies(size: int) -> Iterator[Piece]:
    body = b"x" * 61_440
    for _ in range(max(1, size // len(body))):
        yield "in", (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 61440\r\n\r\n" + body)
        yield "out", b"HTTP/1.1 204 No Content\r\n\r\n"


def tiny_segments(size: int) -> Iterator[Piece]:
    # What looks like the start of a request line that never ends: every resync scans it.
    yield "in", b"GET /" + b"a" * (size // 10 - 5)


def tiny_ordinary(size: int) -> Iterator[Piece]:
    data = b"".join(piece for side, piece in ordinary(size // 10) if side == "in")
    yield "in", data[: size // 10]


INPUTS: dict[str, tuple[Callable[[int], Iterator[Piece]], int]] = {
    # name: (generator, segment size)
    "ordinary": (ordinary, SEGMENT),
    "request_lines": (request_lines, SEGMENT),
    "continues": (continues, SEGMENT),
    "header_names": (header_names, SEGMENT),
    "big_head": (big_head, SEGMENT),
    "ambiguous": (ambiguous, SEGMENT),
    "bodies": (bodies, SEGMENT),
    "tiny_ordinary": (tiny_ordinary, 1),
    "tiny_segments": (tiny_segments, 1),
}


def events_of(name: str, size: int) -> list[AnyEvent]:
    generate, segment = INPUTS[name]
    events: list[AnyEvent] = [
        ConnectionOpened(
            ts=1.0,
            conn=0,
            client="198.18.0.1",
            client_port=40000,
            server="198.18.0.2",
            server_port=80,
        )
    ]
    for direction, data in generate(size):
        for start in range(0, len(data), segment):
            events.append(
                DataReceived(
                    ts=1.0, conn=0, direction=direction, data=data[start : start + segment]
                )
            )
    return events


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def feed(name: str, size: int) -> tuple[float, int, int]:
    """CPU seconds to feed the input to a fresh Store, RSS growth, exchanges decoded."""
    updates: list[Update] = [AgentEvent("local", e) for e in events_of(name, size)]
    store = Store()
    before = rss()
    started = time.process_time()
    for start in range(0, len(updates), BATCH):
        store.apply(updates[start : start + BATCH])
    elapsed = time.process_time() - started
    return elapsed, rss() - before, store.exchange_count


def run_isolated(name: str, size: int) -> tuple[float, int, int]:
    context = multiprocessing.get_context("fork")
    with context.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(feed, (name, size))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default=",".join(INPUTS))
    args = parser.parse_args()
    wanted = [name for name in INPUTS if name in args.only.split(",")]
    for reference in ("ordinary", "tiny_ordinary"):
        if reference not in wanted:
            wanted.insert(0, reference)
    times: dict[str, list[float]] = {name: [] for name in wanted}
    growth: dict[str, list[int]] = {name: [] for name in wanted}
    decoded: dict[str, int] = {}
    for _ in range(args.runs):  # interleaved: a busy neighbour slows every input alike
        for name in wanted:
            seconds, grew, exchanges = run_isolated(name, args.size)
            times[name].append(seconds)
            growth[name].append(grew)
            decoded[name] = exchanges
    print(
        f"hostile inputs of {args.size:,} bytes fed to a Store, CPU time median of "
        f"{args.runs} runs (tiny_*: {args.size // 10:,} bytes in 1-byte segments)"
    )
    print(f"{'input':<14} {'seconds':>8} {'ratio':>7} {'RSS growth':>11} {'exchanges':>10}")
    for name in wanted:
        reference = "tiny_ordinary" if name.startswith("tiny") else "ordinary"
        median = statistics.median(times[name])
        ratio = median / statistics.median(times[reference])
        grew = statistics.median(growth[name]) / 1e6
        print(f"{name:<14} {median:>8.3f} {ratio:>6.2f}x {grew:>8.1f} MB {decoded[name]:>10,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
