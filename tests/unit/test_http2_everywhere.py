"""HTTP/2 streams and gRPC calls are exchanges like any other: through the store (hand-off from
the connection decoder), in filters, the header inventory, copy as curl, ``dump --http``, HAR
(written and read back) and the detail pane's message list."""

from __future__ import annotations

import base64
import json

import pytest

from agent.events import ConnectionClosed, ConnectionOpened, DataReceived
from tests.unit.h2_streams import exchange_summary, recording
from tui.model.curl import as_curl
from tui.model.filters import parse_filter
from tui.model.flows import Connection, Exchange
from tui.model.http2 import JOINED_MID_STREAM
from tui.model.store import Store, StoreChange
from tui.model.updates import AgentEvent
from tui.output.exchange_text import ExchangeTextFormatter
from tui.output.har import har_document, har_entry, har_of_view
from tui.output.har_reading import read_har
from tui.output.jsonl import encode_line, read_lines
from tui.views.widgets.stream_messages import message_payload
from tui.views.widgets.tables import EXCHANGE_COLUMNS, exchange_cells

pytestmark = pytest.mark.timeout(60)


def stored(*names: str, mid_stream: bool = False) -> Store:
    """The recordings as one agent's events, one connection each, through a Store."""
    store = Store()
    store.apply(events_of(*names, mid_stream=mid_stream))
    return store


def events_of(*names: str, mid_stream: bool = False) -> list[AgentEvent]:
    events: list[AgentEvent] = []
    seq = 1
    for conn, name in enumerate(names):
        opened = ConnectionOpened(
            seq=seq,
            ts=1.0,
            conn=conn,
            client="10.0.0.1",
            client_port=40000 + conn,
            server="10.0.0.2",
            server_port=8080,
            mid_stream=mid_stream,
        )
        events.append(AgentEvent("local", opened))
        for index, (direction, data) in enumerate(recording(name)):
            seq += 1
            chunk = DataReceived(seq=seq, ts=2.0 + index, conn=conn, direction=direction, data=data)
            events.append(AgentEvent("local", chunk))
        seq += 1
        closed = ConnectionClosed(seq=seq, ts=90.0, conn=conn, reason="fin")
        events.append(AgentEvent("local", closed))
        seq += 1
    return events


def all_exchanges(store: Store) -> list[tuple[Connection, Exchange]]:
    return [(conn, ex) for conn in store.connections.values() for ex in conn.exchanges]


def matching(store: Store, expression: str) -> list[str]:
    found = parse_filter(expression)
    return [
        ex.request.target for conn, ex in all_exchanges(store) if found.matches_exchange(ex, conn)
    ]


def test_the_store_hands_prior_knowledge_h2c_and_grpc_to_the_http2_decoder() -> None:
    store = stored("nghttp-concurrent", "curl-h2c-upgrade", "grpc-calls")
    protocols = [conn.protocol for conn in store.connections.values()]
    assert protocols == ["h2", "h2", "grpc"]
    upgraded = next(ex for c, ex in all_exchanges(store) if c.key[1] == 1)
    # curl asked in HTTP/1.1; the 101 came first, then the answer on stream 1.
    assert (upgraded.request.method, upgraded.request.target) == ("GET", "/upgraded")
    assert upgraded.request.http_version == "1.1"
    assert [r.status for r in upgraded.informational] == [101]
    assert upgraded.response is not None
    assert (upgraded.stream_id, upgraded.status, upgraded.response.http_version) == (1, 200, "2")
    assert upgraded.response.body == b"GET /upgraded 0\n"
    assert not upgraded.upgraded


def test_a_connection_joined_mid_stream_is_told_http2_by_its_frames() -> None:
    store = stored("grpc-joined-late", mid_stream=True)
    (conn,) = store.connections.values()
    assert conn.protocol == "grpc"
    assert [ex.stream_id for ex in conn.exchanges] == [7, 9, 11]
    assert all(ex.notes == [JOINED_MID_STREAM] for ex in conn.exchanges)


def test_filters_work_on_streams_and_calls() -> None:
    store = stored("nghttp-concurrent", "grpc-calls")
    say_hello = "/podtap.demo.Greeter/SayHello"
    assert matching(store, "~gs NOT_FOUND") == [say_hello]
    assert matching(store, "~gs 5") == [say_hello]
    assert len(matching(store, "~gs ok")) == 4
    assert matching(store, "~p Greeter/Count") == ["/podtap.demo.Greeter/Count"]
    assert matching(store, "~h2 & ~c 404") == ["/missing"]
    assert len(matching(store, "~grpc")) == 5
    assert matching(store, '~h "x-user-id: alice" & ~m GET') == [
        "/page.html",
        "/big.bin",
        "/missing",
    ]
    assert matching(store, '~hs "content-type: text/html$"') == ["/page.html"]
    assert matching(store, "~b fifteen & ~p Sum") == ["/podtap.demo.Greeter/Sum"]
    with pytest.raises(ValueError, match="~gs wants a gRPC status"):
        parse_filter("~gs NOPE")


def test_the_header_inventory_counts_http2_requests() -> None:
    store = stored("nghttp-concurrent")
    inventory = store.header_inventory
    assert inventory.requests == 3
    stats = inventory.stats("x-user-id")
    assert stats is not None
    assert (stats.requests_with, stats.top_values) == (3, [("alice", 3)])


def test_copy_as_curl_dump_and_har() -> None:
    store = stored("nghttp-concurrent", "grpc-calls")
    pairs = all_exchanges(store)
    conn, page = pairs[0]
    command = as_curl(page, conn)
    assert command.startswith("curl --http2-prior-knowledge http://127.0.0.1:42945/page.html")
    assert "-H 'x-user-id: alice'" in command

    formatter = ExchangeTextFormatter(reveal=True)
    change = StoreChange(new_exchanges=[ex for _, ex in pairs])
    text = formatter.format_change(change, store.get)
    assert "## Request [0:0] stream 13 from 10.0.0.1:40000 to 10.0.0.2:8080\n" in text
    assert "GET /page.html HTTP/2\n" in text
    assert "## Response [1:4] 200 NOT_FOUND" in text
    assert '## gRPC [1:0] client → server message (7 bytes)\n1: "alice"\n\n' in text

    entries = [har_entry(ex, c) for c, ex in pairs]
    assert {e["request"]["httpVersion"] for e in entries} == {"HTTP/2"}
    assert {e["response"]["httpVersion"] for e in entries} == {"HTTP/2"}
    document = har_document(entries, "test")
    reopened = Store()
    reopened.apply([AgentEvent(s, e) for s, e in read_har(document, "x.har")])
    again = all_exchanges(reopened)
    assert [
        (ex.request.method, ex.request.target, ex.status, ex.request.http_version)
        for _, ex in again
    ] == [(ex.request.method, ex.request.target, ex.status, "2") for _, ex in pairs]
    assert [ex.response.body for _, ex in again if ex.response] == [
        ex.response.body for _, ex in pairs if ex.response
    ]
    assert json.loads(document)["log"]["entries"][0]["response"]["status"] == 200


def test_grpc_messages_in_the_detail_pane_show_their_fields() -> None:
    store = stored("grpc-calls")
    (conn,) = store.connections.values()
    first = conn.exchanges[2].messages[-1]
    payload = message_payload(first)
    assert payload is not None
    assert payload.plain == "  1: [3, 5, 7]\n  2: [15]"


def test_a_jsonl_recording_reopens_to_the_same_exchanges() -> None:
    events = events_of("nghttp-concurrent", "curl-h2c-upgrade", "grpc-calls", "grpc-gzip")
    live = Store()
    live.apply(events)
    lines = [encode_line(update.source, update.event) for update in events]
    reopened = Store()
    reopened.apply(
        [update for update in read_lines(lines, "x.jsonl") if isinstance(update, AgentEvent)]
    )

    def summary(store: Store) -> list[object]:
        return [exchange_summary(ex) for _, ex in all_exchanges(store)]

    assert summary(reopened) == summary(live)
    assert len(summary(live)) == 3 + 1 + 5 + 1


def test_http2_bodies_are_kept_up_to_the_stores_cap() -> None:
    store = Store(body_cap=1000)
    store.apply(events_of("nghttp-concurrent"))
    big = next(ex for _, ex in all_exchanges(store) if ex.request.target == "/big.bin")
    assert big.response is not None
    assert (len(big.response.body), big.response.body_length) == (1000, 102_400)


def test_decoded_header_fields_are_shared_within_a_store_and_not_beyond_it() -> None:
    def value(exchange: Exchange, name: str) -> str:
        return next(v for n, v in exchange.request.headers if n == name)

    first = stored("grpc-calls", "grpc-calls")
    calls = [ex for _, ex in all_exchanges(first) if ex.request.path.endswith("/SayHello")]
    one, other = calls[0], calls[-1]
    assert one.key != other.key  # two connections of one store
    # A field decoded on two connections is decoded once: the store's cache shares its text.
    shared = value(one, "user-agent")
    assert shared.startswith("grpc-python")
    assert value(other, "user-agent") is shared
    # Another store decodes for itself: its cache is its own, and goes with it.
    second = stored("grpc-calls")
    again = next(ex for _, ex in all_exchanges(second) if ex.request.path.endswith("/SayHello"))
    assert value(again, "user-agent") == shared
    assert value(again, "user-agent") is not shared


def test_the_status_column_shows_a_grpc_calls_own_status() -> None:
    store = stored("grpc-calls", "curl-prior-knowledge")
    exchanges = [ex for _, ex in all_exchanges(store)]
    calls = [exchange_cells(ex)[3] for ex in exchanges if ex.request.path.startswith("/podtap")]
    # Unary, server-streaming, client-streaming, bidi, then a call that failed: all HTTP 200.
    assert calls == [("OK", "green")] * 4 + [("NOT_FOUND", "bold red")]
    # Plain HTTP/2 keeps its HTTP status.
    plain = [exchange_cells(ex)[3] for ex in exchanges if not ex.request.path.startswith("/podtap")]
    assert plain
    assert set(plain) == {("200", "green")}
    assert EXCHANGE_COLUMNS[3].width >= len("NOT_FOUND")


def test_har_entries_carry_grpc_messages_which_come_back_with_their_times() -> None:
    store = stored("grpc-calls", "grpc-gzip")
    pairs = [(conn, conn.exchanges) for conn in store.connections.values()]
    data, _ = har_of_view(pairs, "0.1.0", reveal=False)
    entries = json.loads(data)["log"]["entries"]
    unary = entries[0]
    assert "_webSocketMessages" not in unary
    assert unary["_grpcMessages"][0] == {
        "type": "send",
        "time": 6.0,
        "data": '1: "alice"',
        "raw": base64.b64encode(b"\n\x05alice").decode(),
    }
    assert unary["_grpcMessages"][1]["type"] == "receive"
    assert '3: "hello alice"' in unary["_grpcMessages"][1]["data"]
    zipped = next(e for e in entries if e["_grpcMessages"][0].get("_note"))
    assert zipped["_grpcMessages"][0]["_note"].startswith("compressed (gzip")
    reopened = Store()
    reopened.apply([AgentEvent(s, e) for s, e in read_har(data, "calls.har")])

    def messages(of: Store) -> list[list[tuple[str, float, bytes, str]]]:
        return [
            [(m.direction, m.time, m.data, m.note) for m in ex.messages]
            for _, ex in all_exchanges(of)
        ]

    # Streaming calls' messages each at its own time, as captured, not all at the body's end.
    assert messages(reopened) == messages(store)
