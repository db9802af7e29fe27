"""How many segments per second the reassembler takes, in order and reordered.

    .venv/bin/python -m bench.bench_reassembly [--connections 1000] [--runs 5]

Each run feeds request/response traffic of many concurrent connections (1448-byte segments,
both directions, interleaved across connections) to a fresh Reassembler and prints the median
of the runs. "in order" is the fast path; "reordered" permutes each connection's segments within
windows of 16, so most segments go through the out-of-order buffer; "bare acks" is a stream of
payload-less ACKs of open connections. Rates are per second of this process's CPU time, so
that other work on a shared machine does not skew them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from agent.packet import ACK, FIN, PSH, SYN, Segment
from agent.tcp import Reassembler

MSS = 1448
SERVER = bytes([198, 18, 0, 2])
PORT = 8080


def connection(index: int, request: int, response: int) -> list[Segment]:
    client = bytes([198, 19, index // 250, index % 250 + 1])
    cport = 30000 + index
    cisn, sisn = random.getrandbits(32), random.getrandbits(32)
    up = (client, cport, SERVER, PORT)
    down = (SERVER, PORT, client, cport)

    def seq(isn: int, offset: int) -> int:
        return (isn + 1 + offset) & 0xFFFF_FFFF

    segments = [
        Segment(*up, cisn, 0, SYN, b""),
        Segment(*down, sisn, seq(cisn, 0), SYN | ACK, b""),
    ]
    body = random.randbytes(max(request, response))
    for offset in range(0, request, MSS):
        chunk = body[offset : min(offset + MSS, request)]
        segments.append(Segment(*up, seq(cisn, offset), seq(sisn, 0), PSH | ACK, chunk))
    for offset in range(0, response, MSS):
        chunk = body[offset : min(offset + MSS, response)]
        segments.append(Segment(*down, seq(sisn, offset), seq(cisn, request), PSH | ACK, chunk))
    segments.append(Segment(*up, seq(cisn, request), seq(sisn, response), FIN | ACK, b""))
    segments.append(Segment(*down, seq(sisn, response), seq(cisn, request + 1), FIN | ACK, b""))
    return segments


def interleave(flows: list[list[Segment]]) -> list[Segment]:
    """Round-robin across connections, as concurrent traffic arrives."""
    out: list[Segment] = []
    cursors = [iter(flow) for flow in flows]
    while cursors:
        alive = []
        for cursor in cursors:
            segment = next(cursor, None)
            if segment is not None:
                out.append(segment)
                alive.append(cursor)
        cursors = alive
    return out


def reorder(flow: list[Segment], window: int = 16) -> list[Segment]:
    head, data, tail = flow[:2], flow[2:-2], flow[-2:]
    shuffled: list[Segment] = []
    for start in range(0, len(data), window):
        block = data[start : start + window]
        random.shuffle(block)
        shuffled.extend(block)
    return head + shuffled + tail


def bare_acks(flows: list[list[Segment]], count: int) -> list[Segment]:
    """Payload-less ACKs of connections that are open (their handshakes come first)."""
    opening = [segment for flow in flows for segment in flow[:2]]
    acks = [flow[2]._replace(payload=b"", flags=ACK) for flow in flows]
    return opening + [acks[i % len(acks)] for i in range(count)]


def measure(segments: list[Segment], runs: int) -> tuple[float, int]:
    rates = []
    events = 0
    for _ in range(runs):
        reassembler = Reassembler(frozenset({PORT}))
        feed = reassembler.feed
        started = time.process_time()
        events = 0
        for segment in segments:
            events += len(feed(segment, 1.0))
        elapsed = time.process_time() - started
        rates.append(len(segments) / elapsed)
    return statistics.median(rates), events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--request", type=int, default=2_000, help="bytes per request")
    parser.add_argument("--response", type=int, default=64_000, help="bytes per response")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    random.seed(7)
    flows = [connection(i, args.request, args.response) for i in range(args.connections)]
    cases: list[tuple[str, Callable[[], list[Segment]]]] = [
        ("in order", lambda: interleave(flows)),
        ("reordered", lambda: interleave([reorder(flow) for flow in flows])),
        ("bare acks", lambda: bare_acks(flows, 100_000)),
    ]
    for name, build in cases:
        segments = build()
        rate, events = measure(segments, args.runs)
        print(
            f"{name:>10}: {rate:>10,.0f} segments/s  "
            f"({len(segments):,} segments, {events:,} events, median of {args.runs})"
        )


if __name__ == "__main__":
    main()
