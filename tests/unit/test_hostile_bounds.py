"""Memory stays bounded whatever the traffic: the header inventory and the store's bodies."""

from __future__ import annotations

import pytest

from agent.events import AnyEvent, ConnectionOpened, DataReceived
from tui.model.flows import Request
from tui.model.headers import OTHER_HEADERS, HeaderInventory
from tui.model.store import Store
from tui.model.updates import AgentEvent, Update

pytestmark = pytest.mark.timeout(30)


def batch(*events: AnyEvent) -> list[Update]:
    return [AgentEvent("local", event) for event in events]


def test_header_names_past_the_cap_are_counted_together_as_other() -> None:
    inventory = HeaderInventory(max_names=3)
    for index in range(100):
        inventory.record(
            Request(headers=[("Host", "a"), (f"X-Junk-{index}", "v"), (f"X-More-{index}", "w")])
        )
    names = [stats.name for stats in inventory.names_by_usefulness()]
    assert len(inventory) == 4  # three names tracked, and "other"
    assert set(names) == {"host", "x-junk-0", "x-more-0", OTHER_HEADERS}
    other = inventory.stats(OTHER_HEADERS)
    assert other is not None
    assert (other.requests_with, other.score) == (99, 0.0)  # once per request, never a key


def test_values_are_bounded_over_all_names_and_long_ones_are_counted_only() -> None:
    inventory = HeaderInventory(max_tracked_values=50)
    for index in range(200):
        inventory.record(
            Request(
                headers=[(f"X-{index % 10}", f"value-{index}"), ("X-Long", "x" * 5000 + str(index))]
            )
        )
    assert sum(len(inventory.values(f"x-{n}")) for n in range(10)) == 50
    long = inventory.stats("x-long")
    assert long is not None
    assert (long.requests_with, long.distinct_values, long.distinct_capped) == (200, 0, True)


def test_bodies_are_held_within_the_store_wide_budget_oldest_let_go_first() -> None:
    store = Store(body_cap=4096, body_budget=10_000)
    events: list[AnyEvent] = [
        ConnectionOpened(
            ts=1.0, conn=0, client="10.0.0.1", client_port=40000, server="10.0.0.2", server_port=80
        )
    ]
    body = b"b" * 3000
    for index in range(10):
        events.append(
            DataReceived(
                ts=1.0,
                conn=0,
                direction="in",
                data=(
                    f"POST /{index} HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n".encode()
                    + body
                ),
            )
        )
        events.append(
            DataReceived(ts=1.0, conn=0, direction="out", data=b"HTTP/1.1 204 No Content\r\n\r\n")
        )
        store.apply(batch(*events))
        events = []
        exchanges = store.connections[("local", 0)].exchanges
        held = sum(len(ex.request.body) for ex in exchanges)
        assert held <= 10_000
    assert [len(ex.request.body) for ex in exchanges] == [0] * 7 + [3000] * 3
    assert all(ex.request.body_length == 3000 for ex in exchanges)  # the truth stays
    assert exchanges[0].request.body_truncated
