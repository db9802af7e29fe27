"""How fast the journal takes events in, and how fast the server streams them out.

    .venv/bin/python bench/bench_journal.py [--events N] [--clients K]

1. append: a capture-like thread appends batches of 64 small events; events/s.
2. read: one reader pages through the journal 1,000 events at a time; events/s.
3. stream: the real EventServer on loopback; a producer thread appends DataReceived events of
   512 bytes (a typical HTTP request) as fast as it can while K websocket clients, in another
   process, read them all; events/s and MB/s delivered to each client, and the agent process's
   CPU seconds per million events.
Prints medians of a few runs. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agent.events import DataReceived
from agent.journal import Journal
from agent.server import AgentInfo, EventServer
from agent.wire import decode_batch

PAYLOAD = b"GET /api/v1/items?page=2 HTTP/1.1\r\nHost: shop\r\n" + b"x" * 462


def event() -> DataReceived:
    return DataReceived(ts=0.0, conn=1, direction="in", data=PAYLOAD)


def bench_append(count: int) -> float:
    journal = Journal(max_events=200_000)
    batches = [[event() for _ in range(64)] for _ in range(count // 64)]
    began = time.perf_counter()
    for batch in batches:
        journal.append(batch)
    return (count // 64 * 64) / (time.perf_counter() - began)


def bench_read(count: int) -> float:
    journal = Journal(max_events=count)
    journal.append([event() for _ in range(count)])
    began = time.perf_counter()
    cursor = 0
    while events := journal.read(cursor, 1000):
        cursor = events[-1].seq
    return count / (time.perf_counter() - began)


def _client(url: str, count: int, ready: multiprocessing.Queue[float]) -> None:
    from websockets.asyncio.client import connect

    async def read() -> None:
        async with connect(url, max_size=None) as connection:
            ready.put(0.0)
            seen = 0
            began = 0.0
            while seen < count:
                message = await connection.recv()
                assert isinstance(message, bytes)
                events = decode_batch(message)
                if not began:
                    began = time.perf_counter()
                seen = max(seen, events[-1].seq)
            ready.put(time.perf_counter() - began)

    asyncio.run(read())


async def bench_stream(count: int, clients: int) -> tuple[float, float]:
    journal = Journal(max_events=count + 10, max_bytes=1 << 30)
    info = AgentInfo("bench", "0", "host", (80,), ("lo",))
    server = EventServer(journal, info, token=None)
    host, port = await server.start("127.0.0.1", 0)
    url = f"ws://{host}:{port}/v1/events"
    results: multiprocessing.Queue[float] = multiprocessing.Queue()
    readers = [
        multiprocessing.Process(target=_client, args=(url, count, results)) for _ in range(clients)
    ]
    for reader in readers:
        reader.start()
    for _ in readers:
        await asyncio.to_thread(results.get)
    batches = [[event() for _ in range(64)] for _ in range(count // 64 + 1)]
    cpu_before = time.process_time()

    def produce() -> None:
        for batch in batches:
            journal.append(batch)

    threading.Thread(target=produce).start()
    seconds = [await asyncio.to_thread(results.get) for _ in readers]
    cpu = time.process_time() - cpu_before
    for reader in readers:
        reader.join()
    await server.stop(flush_timeout=0)
    return count / statistics.median(seconds), cpu / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    appends = [bench_append(args.events) for _ in range(args.runs)]
    reads = [bench_read(args.events) for _ in range(args.runs)]
    streams = [asyncio.run(bench_stream(args.events, args.clients)) for _ in range(args.runs)]
    rate = statistics.median(s[0] for s in streams)
    cpu = statistics.median(s[1] for s in streams)
    print(f"journal append: {statistics.median(appends):,.0f} events/s")
    print(f"journal read:   {statistics.median(reads):,.0f} events/s")
    print(
        f"stream to {args.clients} client(s): {rate:,.0f} events/s per client "
        f"({rate * len(PAYLOAD) / 1e6:,.1f} MB/s of data), "
        f"agent CPU {cpu:,.2f} s per million events"
    )


if __name__ == "__main__":
    main()
