"""What the store lets go of is freed by reference counting alone.

The app freezes what survives the garbage collector (tui/views/collector.py), so cyclic garbage
made of frozen objects would never be collected: the store must not make any."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from agent.events import AnyEvent, ConnectionClosed, ConnectionOpened, DataReceived, Gap
from tui.model.store import Store
from tui.model.updates import AgentEvent

pytestmark = pytest.mark.timeout(60)

REQUEST = b"GET /orders?page=1 HTTP/1.1\r\nHost: shop\r\nUser-Agent: curl/8.5.0\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
CLIENT_HELLO_START = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


def traffic(connections: int) -> Iterator[AnyEvent]:
    """Keep-alive HTTP (plain and chunked), a lost segment, TLS, and connections left open."""
    for n in range(connections):
        ts = float(n)
        yield ConnectionOpened(
            ts=ts,
            conn=n,
            client="10.0.0.1",
            client_port=40000 + n,
            server="10.0.0.2",
            server_port=80,
        )
        if n % 7 == 3:
            yield DataReceived(ts=ts, conn=n, direction="in", data=CLIENT_HELLO_START)
        else:
            for i in range(n % 5 + 1):
                yield DataReceived(ts=ts, conn=n, direction="in", data=REQUEST)
                answer = CHUNKED if i % 2 else RESPONSE
                yield DataReceived(ts=ts, conn=n, direction="out", data=answer)
            if n % 11 == 5:
                yield Gap(ts=ts, conn=n, direction="in", length=100)
        if n % 3:
            yield ConnectionClosed(ts=ts, conn=n, reason="fin" if n % 2 else "rst")


def test_what_the_caps_evict_is_freed_without_the_cyclic_collector() -> None:
    store = Store(max_connections=40, max_exchanges=120)
    gc.collect()
    gc.disable()
    try:
        for event in traffic(400):
            store.apply([AgentEvent("local", event)])
        assert store.dropped_connections > 300
        assert store.dropped_exchanges > 400
        assert gc.collect() == 0, "evicted connections or exchanges were held in a cycle"
        store.clear()
        assert gc.collect() == 0, "cleared connections or exchanges were held in a cycle"
    finally:
        gc.enable()
