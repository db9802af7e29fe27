"""The store: feeding, bounds, agent restarts, and the incrementally kept filtered view."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.events import (
    AnyEvent,
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    EventsLost,
    Gap,
    Hello,
    Stats,
)
from tui.model.filters import Filter, parse_filter
from tui.model.flows import Connection, Exchange
from tui.model.noise import is_noise
from tui.model.store import Store
from tui.model.updates import AgentEvent, SessionNote, SourceStatus, Update


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: shop.example", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ok(status: int = 200, body: bytes = b"ok") -> bytes:
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def opened(conn: int, ts: float = 1.0, port: int = 40000) -> ConnectionOpened:
    return ConnectionOpened(
        ts=ts, conn=conn, client="10.0.0.1", client_port=port, server="10.0.0.2", server_port=80
    )


def data(conn: int, direction: str, payload: bytes, ts: float = 1.0) -> DataReceived:
    return DataReceived(ts=ts, conn=conn, direction=direction, data=payload)  # type: ignore[arg-type]


def batch(*events: AnyEvent, source: str = "local") -> list[Update]:
    return [AgentEvent(source, event) for event in events]


def exchange_events(conn: int, path: str, status: int = 200, *headers: str) -> list[AnyEvent]:
    return [data(conn, "in", get(path, *headers)), data(conn, "out", ok(status))]


def hello(agent_id: str) -> Hello:
    return Hello(
        ts=0.0,
        protocol=1,
        version="0.1",
        agent_id=agent_id,
        target="host",
        ports=[80],
        interfaces=["lo"],
        oldest_seq=1,
        next_seq=1,
    )


def test_apply_reports_what_changed() -> None:
    store = Store()
    change = store.apply(batch(opened(0), *exchange_events(0, "/a"), *exchange_events(0, "/b")))
    assert change.new_connections == [("local", 0)]
    assert [ex.request.path for ex in change.new_exchanges] == ["/a", "/b"]
    assert change.changed_exchanges == []  # new ones are not repeated as changed
    change = store.apply(
        batch(data(0, "in", get("/c")), ConnectionClosed(ts=2, conn=0, reason="rst"))
    )
    assert [ex.request.path for ex in change.new_exchanges] == ["/c"]
    assert change.changed_connections == {("local", 0)}
    conn = store.get(("local", 0))
    assert conn is not None
    assert conn.state == "reset"
    assert conn.requests == 3
    assert conn.last_status == 200
    assert store.header_inventory.requests == 3


def test_connections_beyond_the_cap_evict_the_oldest() -> None:
    store = Store(max_connections=50)
    removed: list[tuple[str, int]] = []
    for n in range(200):
        change = store.apply(batch(opened(n), *exchange_events(n, f"/{n}")))
        removed += change.removed_connections
    assert len(store.connections) == 50
    assert store.dropped_connections == 150
    assert sorted(removed) == [("local", n) for n in range(150)]
    assert next(iter(store.connections)) == ("local", 150)
    assert [c.conn for c in store.visible_connections()][:2] == [199, 198]
    # Late events for an evicted connection do not bring it back.
    store.apply(batch(*exchange_events(3, "/late")))
    assert store.get(("local", 3)) is None


def test_exchanges_beyond_the_cap_evict_the_oldest_and_counts_stay_true() -> None:
    store = Store(max_exchanges=100)
    store.apply(batch(opened(0), opened(1)))
    for n in range(300):
        store.apply(batch(*exchange_events(n % 2, f"/{n}")))
    assert store.exchange_count <= 100
    total = sum(len(c.exchanges) for c in store.connections.values())
    assert total == store.exchange_count
    assert store.dropped_exchanges == 300 - total
    first = store.get(("local", 0))
    assert first is not None
    assert first.requests == 150
    assert first.exchanges[-1].request.path == "/298"
    assert first.exchanges[0].index == 150 - len(first.exchanges)


def test_an_agent_restart_keeps_connection_keys_unique() -> None:
    store = Store()
    store.apply([AgentEvent("local", hello("a1")), *batch(opened(0), opened(1))])
    store.apply([AgentEvent("local", hello("a1"))])  # a reconnect to the same agent
    store.apply(batch(*exchange_events(1, "/same-agent")))
    store.apply([AgentEvent("local", hello("a2")), *batch(opened(0))])
    assert list(store.connections) == [("local", 0), ("local", 1), ("local", 2)]
    assert store.sources["local"].agent_id == "a2"
    old = store.get(("local", 1))
    assert old is not None
    assert old.requests == 1


def test_pods_are_separate_sources() -> None:
    store = Store()
    store.apply(batch(opened(0), source="shop/web-0") + batch(opened(0), source="shop/web-1"))
    assert set(store.connections) == {("shop/web-0", 0), ("shop/web-1", 0)}


def test_status_notes_and_counters() -> None:
    store = Store()
    change = store.apply(
        [
            SourceStatus("shop/web-0", "reconnecting", "the stream broke; retrying"),
            SessionNote("guessed container app"),
            AgentEvent(
                "shop/web-0",
                Stats(
                    ts=1,
                    packets=10,
                    bytes=100,
                    kernel_packets=10,
                    kernel_drops=2,
                    open_connections=1,
                    gaps=0,
                    gap_bytes=0,
                ),
            ),
            AgentEvent(
                "shop/web-1",
                Stats(
                    ts=1,
                    packets=5,
                    bytes=50,
                    kernel_packets=5,
                    kernel_drops=1,
                    open_connections=1,
                    gaps=0,
                    gap_bytes=0,
                ),
            ),
            AgentEvent("shop/web-0", EventsLost(ts=1, first_seq=5, count=7, reason="journal")),
            AgentEvent("shop/web-0", opened(0)),
            AgentEvent("shop/web-0", Gap(ts=1, conn=0, direction="in", length=99)),
        ]
    )
    assert change.sources_changed
    assert change.stats_changed
    assert change.notes == ["guessed container app"]
    assert store.sources["shop/web-0"].state == "reconnecting"
    assert store.notes == ["guessed container app"]
    assert (store.stats.kernel_drops, store.stats.lost_events) == (3, 7)
    assert (store.stats.gaps, store.stats.gap_bytes) == (1, 99)
    assert store.stats.events == 5


def test_data_for_an_unknown_connection_makes_a_mid_stream_one() -> None:
    store = Store()
    store.apply(batch(data(4, "in", b"}" + get("/x")), data(4, "out", ok())))
    conn = store.get(("local", 4))
    assert conn is not None
    assert conn.mid_stream
    assert [ex.request.path for ex in conn.exchanges] == ["/x"]


def test_filter_invert_and_noise() -> None:
    store = Store()
    store.apply(
        batch(
            opened(0),
            *exchange_events(0, "/api/a", 200),
            opened(1),
            *exchange_events(1, "/api/b", 500),
            opened(2),
            *exchange_events(2, "/healthz", 200, "User-Agent: kube-probe/1.29"),
            opened(3),
            data(3, "in", b"\x00binary"),
        )
    )

    def keys() -> list[int]:
        return [c.conn for c in store.visible_connections()]

    assert keys() == [3, 2, 1, 0]
    store.set_filter(parse_filter("~c 5xx"))
    assert keys() == [1]
    store.set_filter(parse_filter("~c 5xx"), invert=True)
    assert keys() == [3, 2, 0]
    store.set_filter(None)
    store.hide_noise = True
    assert keys() == [3, 1, 0]
    assert store.visible_exchanges(("local", 2)) == []
    # The view follows new traffic without a recomputation.
    store.set_filter(parse_filter("~p ^/api"))
    store.apply(batch(*exchange_events(3, "/api/late")))  # connection 3 is raw TCP: ignored
    store.apply(batch(opened(4), *exchange_events(4, "/api/c")))
    assert keys() == [4, 1, 0]
    assert store.matches(store.connections[("local", 4)])


def test_clear_forgets_everything_but_live_connections_come_back() -> None:
    store = Store()
    store.apply(batch(opened(0), *exchange_events(0, "/a")))
    store.clear()
    assert store.connections == {}
    assert store.visible_connections() == []
    assert store.header_inventory.requests == 0
    store.apply(batch(*exchange_events(0, "/b")))
    conn = store.get(("local", 0))
    assert conn is not None
    assert [ex.request.path for ex in conn.exchanges] == ["/b"]


# ------------------------------------------------------------------------ view == recomputation

FILTERS = [
    None,
    "~m GET",
    "~c 5xx",
    "~c 200",
    "!~c 503",
    "~p ^/a",
    "!~p ^/a",
    "~tcp",
    "~h x-user-id",
    "~src :40001",
]
PATHS = ["/a", "/b", "/healthz", "/a/x"]


def _reference(store: Store, flt: Filter | None, invert: bool, noise: bool) -> list[Connection]:
    def shown(ex: Exchange, conn: Connection) -> bool:
        if noise and is_noise(ex):
            return False
        return flt is None or flt.evaluate(conn, ex) != invert

    def visible(conn: Connection) -> bool:
        if conn.exchanges:
            return any(shown(ex, conn) for ex in conn.exchanges)
        return flt is None or flt.evaluate(conn, None) != invert

    return [c for c in reversed(store.connections.values()) if visible(c)]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.integers(0, 4), st.integers(40000, 40002)),
        st.tuples(
            st.just("get"),
            st.integers(0, 4),
            st.sampled_from(PATHS),
            st.sampled_from([200, 404, 503]),
        ),
        st.tuples(st.just("request"), st.integers(0, 4), st.sampled_from(PATHS)),
        st.tuples(st.just("response"), st.integers(0, 4), st.sampled_from([200, 503])),
        st.tuples(st.just("user"), st.integers(0, 4), st.sampled_from(PATHS)),
        st.tuples(st.just("half"), st.integers(0, 4), st.sampled_from(PATHS)),
        st.tuples(st.just("raw"), st.integers(0, 4)),
        st.tuples(st.just("close"), st.integers(0, 4)),
        st.tuples(st.just("filter"), st.sampled_from(FILTERS), st.booleans()),
        st.tuples(st.just("noise"), st.booleans()),
    ),
    max_size=40,
)


@pytest.mark.timeout(90)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations, st.integers(1, 4))
def test_the_incremental_view_equals_a_full_recomputation(
    ops: list[tuple[object, ...]], per_batch: int
) -> None:
    store = Store(max_connections=4, max_exchanges=12)
    flt: Filter | None = None
    invert = False
    pending: list[Update] = []

    def flush() -> None:
        store.apply(pending)
        pending.clear()
        assert store.visible_connections() == _reference(store, flt, invert, store.hide_noise)
        for conn in store.connections.values():
            expected = [
                ex
                for ex in conn.exchanges
                if not (store.hide_noise and is_noise(ex))
                and (flt is None or flt.evaluate(conn, ex) != invert)
            ]
            assert store.visible_exchanges(conn.key) == expected
        # The flat list (requests view) holds the same exchanges, each connection's in order.
        in_order = store.visible_exchanges_in_order()
        per_connection = [store.visible_exchanges(key) for key in store.connections]
        assert len(in_order) == sum(len(shown) for shown in per_connection)
        for shown in per_connection:
            assert [ex for ex in in_order if shown and ex.key == shown[0].key] == shown

    for op in ops:
        kind = op[0]
        if kind == "open":
            pending += batch(opened(op[1], port=op[2]))  # type: ignore[arg-type]
        elif kind == "get":
            pending += batch(*exchange_events(op[1], op[2], op[3]))  # type: ignore[arg-type]
        elif kind == "request":
            pending += batch(data(op[1], "in", get(op[2])))  # type: ignore[arg-type]
        elif kind == "response":
            pending += batch(data(op[1], "out", ok(op[2])))  # type: ignore[arg-type]
        elif kind == "user":
            pending += batch(data(op[1], "in", get(op[2], "X-User-Id: u")))  # type: ignore[arg-type]
        elif kind == "half":
            partial = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"
            pending += batch(data(op[1], "out", partial))  # type: ignore[arg-type]
        elif kind == "raw":
            pending += batch(data(op[1], "in", b"\x16\x03\x01\x00\x01\x02"))  # type: ignore[arg-type]
        elif kind == "close":
            pending += batch(ConnectionClosed(ts=2, conn=op[1], reason="fin"))  # type: ignore[arg-type]
        elif kind == "filter":
            flush()
            flt = None if op[1] is None else parse_filter(op[1])  # type: ignore[arg-type]
            invert = bool(op[2])
            store.set_filter(flt, invert)
        elif kind == "noise":
            flush()
            store.hide_noise = bool(op[1])
        if len(pending) >= per_batch:
            flush()
    flush()
