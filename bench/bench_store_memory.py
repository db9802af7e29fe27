"""Memory of the store: RSS after feeding it 1,000,000 HTTP exchanges with its default caps.

    .venv/bin/python bench/bench_store_memory.py [--exchanges 1000000]

The traffic is generated on the fly (so the benchmark itself holds none of it): keep-alive
connections of 50 exchanges each, realistic request headers (user and tenant ids, tracing
ids, a request id), JSON bodies both ways, one connection in twenty raw TCP, fed as agent
events in batches of 500, as the app does. Goal: RSS < 400 MB.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.events import ConnectionClosed, ConnectionOpened, DataReceived
from tui.model.store import Store
from tui.model.updates import AgentEvent, Update

PER_CONNECTION = 50
BATCH = 500


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def traffic(exchanges: int) -> Iterator[Update]:
    users = [f"user-{n}" for n in range(200)]
    conn = -1
    for n in range(exchanges):
        if n % PER_CONNECTION == 0:
            if conn >= 0:
                yield AgentEvent("shop/web-0", ConnectionClosed(ts=n, conn=conn, reason="fin"))
            conn += 1
            yield AgentEvent(
                "shop/web-0",
                ConnectionOpened(
                    ts=n,
                    conn=conn,
                    client=f"10.1.{conn % 250}.{conn % 200 + 1}",
                    client_port=30000 + conn % 30000,
                    server="10.2.0.7",
                    server_port=8080,
                ),
            )
            if conn % 20 == 19:
                # A raw TCP client: one blob each way, then the next connection.
                yield AgentEvent(
                    "shop/web-0", DataReceived(ts=n, conn=conn, direction="in", data=b"\x00" * 300)
                )
                yield AgentEvent("shop/web-0", ConnectionClosed(ts=n, conn=conn, reason="fin"))
                conn += 1
                yield AgentEvent(
                    "shop/web-0",
                    ConnectionOpened(
                        ts=n,
                        conn=conn,
                        client="10.1.0.9",
                        client_port=40000 + conn % 20000,
                        server="10.2.0.7",
                        server_port=8080,
                    ),
                )
        user = users[n % len(users)]
        body = json.dumps({"id": n, "user": user, "items": list(range(n % 12))}).encode()
        request = (
            f"POST /api/orders?tenant=t{n % 9} HTTP/1.1\r\nHost: shop.svc.cluster.local\r\n"
            f"User-Agent: shop-frontend/2.3\r\nAccept: application/json\r\n"
            f"X-User-Id: {user}\r\nX-Tenant: t{n % 9}\r\nX-Request-Id: 7f3a9c1e-{n:012x}\r\n"
            f"traceparent: 00-{n:032x}-{n:016x}-01\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        response = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Date: Tue, 01 Oct 2024 10:00:{n % 60:02d} GMT\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        yield AgentEvent("shop/web-0", DataReceived(ts=n, conn=conn, direction="in", data=request))
        yield AgentEvent(
            "shop/web-0", DataReceived(ts=n + 0.01, conn=conn, direction="out", data=response)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=1_000_000)
    args = parser.parse_args()
    gc.collect()
    before = rss_mb()
    store = Store()
    start = time.monotonic()
    batch: list[Update] = []
    for update in traffic(args.exchanges):
        batch.append(update)
        if len(batch) == BATCH:
            store.apply(batch)
            batch = []
    store.apply(batch)
    elapsed = time.monotonic() - start
    gc.collect()
    after = rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    raw = sum(len(c.raw_in) + len(c.raw_out) for c in store.connections.values())
    print(
        f"fed {args.exchanges:,} exchanges in {elapsed:.0f} s "
        f"({args.exchanges / elapsed:,.0f} exchanges/s through Store.apply)"
    )
    print(
        f"kept: {len(store.connections):,} connections, {store.exchange_count:,} exchanges, "
        f"{raw / 1e6:.1f} MB of raw bytes; dropped: {store.dropped_connections:,} connections, "
        f"{store.dropped_exchanges:,} exchanges"
    )
    print(
        f"header inventory: {len(store.header_inventory)} names over "
        f"{store.header_inventory.requests:,} requests"
    )
    print(
        f"RSS: {after:.0f} MB (interpreter and modules before feeding: {before:.0f} MB; "
        f"peak {peak:.0f} MB)   goal < 400 MB"
    )


if __name__ == "__main__":
    main()
