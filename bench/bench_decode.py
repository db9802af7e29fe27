"""Decode throughput of podtap's model against h11 alone, on the same captured-style stream.

    .venv/bin/python bench/bench_decode.py [--exchanges 200000] [--runs 3]

The stream: keep-alive connections of 50 exchanges each (GET/POST/HEAD, JSON bodies with
Content-Length, some chunked responses, 204s), cut into 1,448-byte segments as TCP would carry
them, requests and responses interleaved in capture order.

Measured in CPU time of this process (the box is shared; wall time would measure the
neighbours too), contenders interleaved round by round, each as the median of --runs:
* model: tui.model.http.ConnectionDecoder on every connection (what the store runs per event);
  plain messages that arrive whole are read without h11 (``http1_fast``), the rest with it;
* store: tui.model.store.Store.apply on the same events (decoder + inventory + filtered view);
* h11 alone: the least an h11 user must do to get the same events out of both directions,
  two ways, and the faster is the reference:
    - keep-alive: one server-side and one client-side h11.Connection per connection, cycled
      with start_next_cycle (the server side must answer each request to move on, the client
      side must send each request before it may read the response);
    - per message: a fresh h11.Connection per message (what podtap does);
* the decoder again with the cyclic garbage collector paused. The model keeps every exchange
  (h11 alone keeps nothing), and the collector's passes over that growing heap are most of
  the difference on long runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import h11

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.events import ConnectionOpened, DataReceived
from tui.model.flows import Connection, Exchange
from tui.model.http import ConnectionDecoder
from tui.model.http1_cache import Http1Cache
from tui.model.store import Store
from tui.model.updates import AgentEvent

SEGMENT = 1448
PER_CONNECTION = 50
Direction = Literal["in", "out"]
Event = tuple[int, Direction, bytes]


def build_stream(exchanges: int) -> tuple[list[Event], list[str]]:
    """(conn, direction, segment) in capture order, and the method of every request."""
    events: list[Event] = []
    methods: list[str] = []
    users = [f"user-{n}" for n in range(40)]
    for n in range(exchanges):
        conn = n // PER_CONNECTION
        kind = n % 10
        user = users[n % len(users)]
        common = (
            f"Host: shop.svc.cluster.local\r\nUser-Agent: shop-frontend/2.3\r\n"
            f"Accept: application/json\r\nX-User-Id: {user}\r\nX-Tenant: t{n % 7}\r\n"
            f"X-Request-Id: 7f3a9c1e-{n:08x}\r\ntraceparent: 00-{n:032x}-{n:016x}-01\r\n"
        )
        body = json.dumps({"id": n, "user": user, "items": list(range(n % 12))}).encode()
        if kind < 6:
            method = "GET"
            request = f"GET /api/items/{n}?page={n % 5} HTTP/1.1\r\n{common}\r\n".encode()
        elif kind < 8:
            method = "POST"
            request = (
                f"POST /api/orders HTTP/1.1\r\n{common}Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
        elif kind == 8:
            method = "HEAD"
            request = f"HEAD /static/app.js HTTP/1.1\r\n{common}\r\n".encode()
        else:
            method = "DELETE"
            request = f"DELETE /api/items/{n} HTTP/1.1\r\n{common}\r\n".encode()
        head = (
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\n"
            "Date: Tue, 01 Oct 2024 10:00:00 GMT\r\n"
        )
        if method == "HEAD":
            response = (head.format(200, "OK") + "Content-Length: 48213\r\n\r\n").encode()
        elif method == "DELETE":
            response = (head.format(204, "No Content") + "\r\n").encode()
        elif n % 20 == 3:
            payload = body * 3
            chunks = b"".join(
                f"{len(payload[i : i + 100]):x}\r\n".encode() + payload[i : i + 100] + b"\r\n"
                for i in range(0, len(payload), 100)
            )
            response = (head.format(200, "OK") + "Transfer-Encoding: chunked\r\n\r\n").encode()
            response += chunks + b"0\r\n\r\n"
        else:
            status = 500 if n % 50 == 7 else 200
            response = (
                head.format(status, "OK") + f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
        methods.append(method)
        for direction, data in (("in", request), ("out", response)):
            for i in range(0, len(data), SEGMENT):
                events.append((conn, direction, data[i : i + SEGMENT]))  # type: ignore[arg-type]
    return events, methods


class _Sink:
    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started = 0

    def exchange_started(self, exchange: Exchange) -> None:
        self.started += 1

    def exchange_changed(self, exchange: Exchange) -> None:
        pass


def run_model(events: list[Event], _methods: list[str]) -> int:
    decoders: dict[int, ConnectionDecoder] = {}
    cache = Http1Cache()  # one per store, as the store keeps it
    sink = _Sink()
    finished = 0
    for conn_id, direction, data in events:
        decoder = decoders.get(conn_id)
        if decoder is None:
            conn = Connection(
                ("local", conn_id), "local", conn_id, "10.0.0.1", 40000, "10.0.0.2", 80, 0.0
            )
            decoder = decoders[conn_id] = ConnectionDecoder(conn, cache=cache)
        decoder.feed(direction, data, 1.0, sink)
    for decoder in decoders.values():
        finished += sum(1 for ex in decoder.connection.exchanges if ex.finished is not None)
    return finished


def run_store(events: list[Event], _methods: list[str]) -> int:
    store = Store(max_exchanges=1_000_000)
    updates = []
    seen: set[int] = set()
    for conn_id, direction, data in events:
        if conn_id not in seen:
            seen.add(conn_id)
            updates.append(
                AgentEvent(
                    "local",
                    ConnectionOpened(
                        ts=1.0,
                        conn=conn_id,
                        client="10.0.0.1",
                        client_port=40000 + conn_id % 20000,
                        server="10.0.0.2",
                        server_port=80,
                    ),
                )
            )
        updates.append(
            AgentEvent("local", DataReceived(ts=1.0, conn=conn_id, direction=direction, data=data))
        )
    start = time.process_time()
    for i in range(0, len(updates), 500):
        store.apply(updates[i : i + 500])
    run_store.elapsed = time.process_time() - start  # type: ignore[attr-defined]
    return sum(
        1 for conn in store.connections.values() for ex in conn.exchanges if ex.finished is not None
    )


def _drain(connection: h11.Connection, until: type) -> bool:
    """Pull events until ``until`` (True) or NEED_DATA (False)."""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            return False
        if type(event) is until:
            return True


def run_h11_keepalive(events: list[Event], methods: list[str]) -> int:
    """h11 alone, one pair of long-lived connections per tapped connection."""
    answer = h11.Response(status_code=200, headers=[("content-length", "0")])
    end = h11.EndOfMessage()
    stand_ins = {
        m: h11.Request(method=m, target="/", headers=[("host", "x")]) for m in set(methods)
    }
    servers: dict[int, h11.Connection] = {}
    clients: dict[int, h11.Connection] = {}
    next_method: dict[int, int] = {}
    finished = 0
    for conn_id, direction, data in events:
        if direction == "in":
            server = servers.get(conn_id)
            if server is None:
                server = servers[conn_id] = h11.Connection(h11.SERVER)
            server.receive_data(data)
            while _drain(server, h11.EndOfMessage):
                server.send(answer)
                server.send(end)
                server.start_next_cycle()
        else:
            client = clients.get(conn_id)
            if client is None:
                client = clients[conn_id] = h11.Connection(h11.CLIENT)
                index = conn_id * PER_CONNECTION
                client.send(stand_ins[methods[index]])
                client.send(end)
                next_method[conn_id] = index + 1
            client.receive_data(data)
            while _drain(client, h11.EndOfMessage):
                finished += 1
                client.start_next_cycle()
                index = next_method[conn_id]
                if index < len(methods) and index // PER_CONNECTION == conn_id:
                    client.send(stand_ins[methods[index]])
                    client.send(end)
                    next_method[conn_id] = index + 1
    return finished


def run_h11_per_message(events: list[Event], methods: list[str]) -> int:
    """h11 alone, a fresh connection per message, seeded with what the last one left."""
    end = h11.EndOfMessage()
    stand_ins = {
        m: h11.Request(method=m, target="/", headers=[("host", "x")]) for m in set(methods)
    }
    servers: dict[int, h11.Connection] = {}
    clients: dict[int, h11.Connection] = {}
    next_method: dict[int, int] = {}
    finished = 0

    def new_client(conn_id: int) -> h11.Connection:
        index = next_method.get(conn_id, conn_id * PER_CONNECTION)
        client = h11.Connection(h11.CLIENT)
        client.send(stand_ins[methods[min(index, len(methods) - 1)]])
        client.send(end)
        next_method[conn_id] = index + 1
        return client

    for conn_id, direction, data in events:
        if direction == "in":
            server = servers.get(conn_id) or h11.Connection(h11.SERVER)
            server.receive_data(data)
            while _drain(server, h11.EndOfMessage):
                rest = server.trailing_data[0]
                server = h11.Connection(h11.SERVER)
                if rest:
                    server.receive_data(rest)
            servers[conn_id] = server
        else:
            client = clients.get(conn_id) or new_client(conn_id)
            client.receive_data(data)
            while _drain(client, h11.EndOfMessage):
                finished += 1
                rest = client.trailing_data[0]
                client = new_client(conn_id)
                if rest:
                    client.receive_data(rest)
            clients[conn_id] = client
    return finished


def run_model_gc_paused(events: list[Event], methods: list[str]) -> int:
    """The decoder with the cyclic garbage collector paused: what the collector costs."""
    gc.disable()
    try:
        return run_model(events, methods)
    finally:
        gc.enable()


CONTENDERS: list[tuple[str, Callable[[list[Event], list[str]], int]]] = [
    ("model (decoder)", run_model),
    ("model (store.apply)", run_store),
    ("h11 keep-alive", run_h11_keepalive),
    ("h11 per message", run_h11_per_message),
    ("decoder, gc paused", run_model_gc_paused),
]


def once(
    name: str, run: Callable[[list[Event], list[str]], int], events: list[Event], methods: list[str]
) -> float:
    gc.collect()
    start = time.process_time()
    finished = run(events, methods)
    elapsed = getattr(run, "elapsed", None) or time.process_time() - start
    if finished != len(methods):
        raise SystemExit(f"{name}: decoded {finished} exchanges, expected {len(methods)}")
    return len(methods) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    events, methods = build_stream(args.exchanges)
    size = sum(len(data) for _, _, data in events)
    print(f"stream: {args.exchanges:,} exchanges, {len(events):,} segments, {size / 1e6:.1f} MB")
    # Rounds interleave the contenders, so that a busy spell of the box hits them alike.
    rates: dict[str, list[float]] = {name: [] for name, _ in CONTENDERS}
    for _ in range(args.runs):
        for name, run in CONTENDERS:
            rates[name].append(once(name, run, events, methods))
    median = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        runs = ", ".join(f"{r:,.0f}" for r in values)
        print(f"{name:<22} {median[name]:>10,.0f} exchanges/s   (runs: {runs})")
    reference = max(median["h11 keep-alive"], median["h11 per message"])
    print(
        f"ratio decoder / fastest h11: {median['model (decoder)'] / reference:.2f}   (goal >= 1.0)"
    )
    print(f"ratio store   / fastest h11: {median['model (store.apply)'] / reference:.2f}")
    paused = median["decoder, gc paused"] / reference
    print(f"ratio decoder with the garbage collector paused / fastest h11: {paused:.2f}")


if __name__ == "__main__":
    main()
