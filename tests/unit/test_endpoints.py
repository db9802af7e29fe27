"""Per-endpoint aggregates, fed by a store decoding real HTTP/1.1 bytes."""

from __future__ import annotations

import pytest

from agent.events import AnyEvent, ConnectionClosed, DataReceived
from tests.unit.h2_streams import recording
from tests.unit.test_store import batch, get, ok, opened
from tui.model.endpoints import OTHER_ROUTE, EndpointTable
from tui.model.store import Store

pytestmark = pytest.mark.timeout(30)


def exchange(conn: int, path: str, status: int, at: float, latency: float) -> list[AnyEvent]:
    return [
        DataReceived(ts=at, conn=conn, direction="in", data=get(path)),
        DataReceived(ts=at + latency, conn=conn, direction="out", data=ok(status)),
    ]


def fed(*events: AnyEvent, table: EndpointTable | None = None) -> EndpointTable:
    store = Store()
    table = table or EndpointTable()
    for event in events:
        change = store.apply(batch(event))
        table.observe(change.new_exchanges, change.changed_exchanges, _protocol(store))
    return table


def _protocol(store: Store):  # type: ignore[no-untyped-def]
    def protocol_of(key: tuple[str, int]) -> str:
        connection = store.get(key)
        return "" if connection is None else connection.protocol

    return protocol_of


def test_counts_rates_errors_and_latency() -> None:
    events: list[AnyEvent] = [opened(1, ts=100.0)]
    for n in range(20):
        status = 500 if n % 10 == 0 else (404 if n % 5 == 0 else 200)
        events += exchange(1, f"/api/users/{n}", status, 100.0 + n * 0.5, 0.010 + n * 0.001)
    events += exchange(1, "/healthz", 200, 111.0, 0.001)
    table = fed(*events)
    users = table.endpoints[("GET", "/api/users/{id}")]
    assert (users.requests, users.responses) == (20, 20)
    assert (users.client_errors, users.server_errors) == (2, 2)
    assert users.protocol == "http"
    p50, p95, p99 = users.percentiles()
    assert p50 is not None
    assert p95 is not None
    assert p99 is not None
    exact = sorted(10.0 + n for n in range(20))
    assert abs(p50 - exact[9]) <= 0.01 * exact[9] + 1e-6
    assert abs(p99 - exact[18]) <= 0.01 * exact[18] + 1e-6
    # 20 requests between t=100 and t=109.5: two a second.
    assert users.per_second(109.9, 10) == [2] * 10
    assert users.rate(109.9) == 2.0
    assert users.rate(200.0) == 0.0
    assert table.latest == 111.0
    assert [e.route for e in table.sorted("requests", 110.0)] == ["/api/users/{id}", "/healthz"]
    assert next(e.route for e in table.sorted("p99", 110.0, descending=False)) == "/healthz"


def test_the_protocol_is_the_connections() -> None:
    store = Store()
    table = EndpointTable()
    for event in (opened(1), *exchange(1, "/pkg.Greeter/SayHello", 200, 1.0, 0.01)):
        change = store.apply(batch(event))
        table.observe(change.new_exchanges, change.changed_exchanges, lambda _key: "grpc")
    greeter = table.endpoints[("GET", "/pkg.Greeter/SayHello")]
    assert (greeter.protocol, greeter.requests, greeter.responses) == ("grpc", 1, 1)


def test_a_request_without_response_counts_once() -> None:
    table = fed(
        opened(1, ts=1.0),
        DataReceived(ts=1.0, conn=1, direction="in", data=get("/slow")),
        ConnectionClosed(ts=2.0, conn=1, reason="rst"),
    )
    slow = table.endpoints[("GET", "/slow")]
    assert (slow.requests, slow.responses) == (1, 0)
    assert slow.percentiles() == (None, None, None)


def test_a_response_in_pieces_is_counted_once() -> None:
    response = ok(201, b"x" * 100)
    table = fed(
        opened(1, ts=1.0),
        DataReceived(ts=1.0, conn=1, direction="in", data=get("/items")),
        DataReceived(ts=1.1, conn=1, direction="out", data=response[:40]),
        DataReceived(ts=1.2, conn=1, direction="out", data=response[40:]),
    )
    items = table.endpoints[("GET", "/items")]
    assert (items.requests, items.responses, items.latency.count) == (1, 1, 1)


def test_endpoints_are_bounded() -> None:
    events: list[AnyEvent] = [opened(1)]
    for n in range(30):
        events += exchange(1, f"/r{n}", 200, 1.0 + n, 0.01)
    table = fed(*events, table=EndpointTable(max_endpoints=10))
    assert len(table.endpoints) == 11
    assert table.endpoints[("*", OTHER_ROUTE)].requests == 20
    table.clear()
    assert not table.endpoints


def test_the_stats_text() -> None:
    from tui.output.stats import endpoints_text, milliseconds

    assert endpoints_text([], 0.0) == "## endpoints: no requests seen\n"
    events: list[AnyEvent] = [opened(1, ts=10.0)]
    events += exchange(1, "/a/1", 200, 10.0, 0.0004)
    events += exchange(1, "/a/2", 503, 11.0, 0.250)
    table = fed(*events)
    lines = endpoints_text(table.sorted("requests", 12.0), 12.0).splitlines()
    assert lines[0].split() == [
        "METHOD",
        "ENDPOINT",
        "PROTO",
        "REQS",
        "RATE/S(10s)",
        "4XX",
        "5XX",
        "GRPC_ERR",
        "P50",
        "P95",
        "P99",
    ]
    assert lines[1].split()[:8] == ["GET", "/a/{id}", "http", "2", "0.2", "0", "1", "0"]
    assert [milliseconds(v) for v in (None, 0.4, 12.34, 250.0, 12_500.0)] == [
        "-",
        "400µs",
        "12.3ms",
        "250ms",
        "12.5s",
    ]


def test_a_failed_grpc_call_counts_as_a_grpc_error_not_a_5xx() -> None:
    # grpcio's calls as recorded: four that end OK, and SayHello("nobody") aborted with
    # NOT_FOUND under an HTTP 200; each status comes in trailers after the response began.
    chunks = recording("grpc-calls")
    events: list[AnyEvent] = [opened(3, ts=1.0)]
    events += [
        DataReceived(ts=1.0 + index, conn=3, direction=direction, data=data)
        for index, (direction, data) in enumerate(chunks)
    ]
    table = fed(*events)
    hello = table.endpoints[("POST", "/podtap.demo.Greeter/SayHello")]
    assert hello.protocol == "grpc"
    assert (hello.requests, hello.responses) == (2, 2)
    assert (hello.client_errors, hello.server_errors, hello.grpc_errors) == (0, 0, 1)
    assert hello.errors == 1
    others = [e for e in table.endpoints.values() if e is not hello]
    assert len(others) == 3
    assert all(e.grpc_errors == 0 and e.responses == e.requests == 1 for e in others)
    assert table.sorted("grpc err", 10.0)[0] is hello
