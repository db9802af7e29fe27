"""HAR: entries from decoded exchanges, the file kept valid at every flush, and HAR read back."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.ui.fakes import (
    ORDER_CONN,
    SERVICE_IP,
    SERVICE_PORT,
    Script,
    request,
    response,
    shop_updates,
)
from tui.model.content import decode_body
from tui.model.store import Store
from tui.model.updates import AgentEvent
from tui.output.har import HarFileWriter, har_entry, har_of_view
from tui.output.har_reading import read_har

pytestmark = pytest.mark.timeout(30)

SCHEMA = json.loads((Path(__file__).with_name("har-1.2.schema.json")).read_text())


def shop_store() -> Store:
    store = Store()
    store.apply(shop_updates())
    return store


def view(store: Store) -> list[tuple[Any, Any]]:
    return [(conn, store.visible_exchanges(conn.key)) for conn in store.connections.values()]


def har(store: Store, *, reveal: bool = False) -> dict[str, Any]:
    data, _count = har_of_view(view(store), "0.1.0", reveal=reveal)
    document: dict[str, Any] = json.loads(data)
    jsonschema.validate(document, SCHEMA)
    return document


def test_every_exchange_is_an_entry_with_the_fields_har_asks_for() -> None:
    entries = har(shop_store())["log"]["entries"]
    assert len(entries) == 14
    assert [e["startedDateTime"] for e in entries] == sorted(e["startedDateTime"] for e in entries)
    order = next(e for e in entries if e["request"]["method"] == "POST")
    assert order["request"]["url"] == f"http://{SERVICE_IP}:{SERVICE_PORT}/api/orders"
    assert order["request"]["postData"] == {
        "mimeType": "application/json",
        "text": '{"item":"book","quantity":2}',
    }
    assert order["response"]["status"] == 500
    assert order["response"]["statusText"] == "Internal Server Error"
    assert json.loads(order["response"]["content"]["text"]) == {"error": "inventory unavailable"}
    assert order["response"]["content"]["mimeType"] == "application/json"
    assert order["timings"]["wait"] == pytest.approx(120.0, abs=1.0)
    assert order["connection"] == str(ORDER_CONN)
    assert order["serverIPAddress"] == SERVICE_IP
    assert order["_pod"] == "local"
    assert order["_clientIPAddress"] == "198.18.0.1"
    head, _, _ = request(
        "POST",
        "/api/orders",
        [
            ("x-user-id", "bob"),
            ("x-tenant", "acme"),
            ("x-request-id", "req-0011"),
            ("Authorization", "Bearer token-of-bob"),
            ("Content-Type", "application/json"),
        ],
        b'{"item":"book","quantity":2}',
    ).partition(b"\r\n\r\n")
    assert order["request"]["headersSize"] == len(head) + 4
    assert order["request"]["bodySize"] == len(b'{"item":"book","quantity":2}')
    user = next(e for e in entries if "expand=orders" in e["request"]["url"])
    assert user["request"]["queryString"] == [{"name": "expand", "value": "orders"}]


def test_secrets_are_masked_unless_revealed() -> None:
    store = shop_store()
    masked = har(store)["log"]["entries"][0]["request"]
    revealed = har(store, reveal=True)["log"]["entries"][0]["request"]
    assert {"name": "Authorization", "value": "Bearer ••••••"} in masked["headers"]
    assert {"name": "Cookie", "value": "session=••••••"} in masked["headers"]
    assert masked["cookies"] == [{"name": "session", "value": "••••••"}]
    assert {"name": "Authorization", "value": "Bearer token-of-alice"} in revealed["headers"]
    assert revealed["cookies"] == [{"name": "session", "value": "alice-cookie"}]
    assert "token-of" not in json.dumps(har(store))


def script_store(script: Script) -> Store:
    store = Store()
    store.apply(script.updates())
    return store


def test_an_unanswered_or_damaged_exchange_is_marked() -> None:
    s = Script().hello()
    s.open(1, "198.18.0.1", 40000)
    s.data(1, "in", request("GET", "/slow"))
    s.open(2, "198.18.0.1", 40001)
    s.data(2, "in", request("GET", "/lossy")).gap(2, "out", 100)
    s.data(2, "out", response(200, b"late"))
    store = script_store(s)
    entries = {e["request"]["url"].rsplit("/", 1)[1]: e for e in har(store)["log"]["entries"]}
    slow = entries["slow"]
    assert slow["response"]["status"] == 0
    assert slow["_incomplete"] is True
    assert "no response" in slow["comment"]
    assert entries["lossy"]["_incomplete"] is True


def test_binary_bodies_are_base64_and_truncated_ones_say_so() -> None:
    blob = bytes(range(256)) * 8
    s = Script().hello()
    s.open(1, "198.18.0.1", 40000)
    s.exchange(
        1,
        request("POST", "/blob", [("Content-Type", "application/octet-stream")], blob),
        response(200, b"x" * 5000, content_type="text/plain"),
    )
    store = Store(body_cap=1000)
    store.apply(s.updates())
    (entry,) = har(store)["log"]["entries"]
    post = entry["request"]["postData"]
    assert post["encoding"] == "base64"
    assert base64.b64decode(post["text"]) == blob[:1000]
    assert post["comment"] == "first 1000 of 2048 bytes"
    assert entry["request"]["bodySize"] == 2048
    content = entry["response"]["content"]
    assert content["size"] == 5000
    assert content["text"] == "x" * 1000
    assert content["comment"] == "first 1000 of 5000 bytes"


def test_the_file_is_a_whole_har_after_every_flush() -> None:
    store = shop_store()
    pairs = view(store)
    entries = [har_entry(ex, conn) for conn, exchanges in pairs for ex in exchanges]
    stream = io.BytesIO()
    writer = HarFileWriter(stream, "0.1.0", "podtap record netns/shop")

    def document() -> list[Any]:
        parsed = json.loads(stream.getvalue())
        jsonschema.validate(parsed, SCHEMA)
        return [e["request"]["url"] for e in parsed["log"]["entries"]]

    writer.flush()
    assert document() == []
    # Three pending, then one of them final and a shorter pending tail: no leftovers.
    writer.flush(entries[0:3])
    assert document() == [e["request"]["url"] for e in entries[0:3]]
    writer.add_final(entries[0])
    writer.flush(entries[1:2])
    assert document() == [e["request"]["url"] for e in entries[0:2]]
    for entry in entries[1:]:
        writer.add_final(entry)
    writer.flush()
    assert document() == [e["request"]["url"] for e in entries]
    assert json.loads(stream.getvalue())["log"]["comment"] == "podtap record netns/shop"
    # The comment can change until the last flush (what was lost is said at the end).
    writer.comment = "podtap record netns/shop; lost ~3 events (slow client)"
    writer.flush()
    assert document() == [e["request"]["url"] for e in entries]
    assert json.loads(stream.getvalue())["log"]["comment"].endswith("lost ~3 events (slow client)")


def test_a_har_read_back_gives_the_same_exchanges() -> None:
    store = shop_store()
    data, count = har_of_view(view(store), "0.1.0", reveal=True)
    reopened = Store()
    reopened.apply([AgentEvent(source, event) for source, event in read_har(data, "shop.har")])
    assert reopened.exchange_count == count == 14

    def summary(s: Store) -> list[Any]:
        return sorted(
            (
                ex.request.method,
                ex.request.target,
                ex.request.headers,
                ex.request.body,
                ex.status,
                ex.response.headers if ex.response else None,
                ex.response.body if ex.response else None,
            )
            for conn in s.connections.values()
            for ex in conn.exchanges
        )

    assert summary(reopened) == summary(store)
    latencies = sorted(
        (ex.request.target, ex.started, ex.latency_ms)
        for conn in store.connections.values()
        for ex in conn.exchanges
    )
    replayed = sorted(
        (ex.request.target, ex.started, ex.latency_ms)
        for conn in reopened.connections.values()
        for ex in conn.exchanges
    )
    for (target, started, latency), (target2, started2, latency2) in zip(
        latencies, replayed, strict=True
    ):
        assert target == target2
        assert started2 == pytest.approx(started, abs=0.001)
        assert latency2 == pytest.approx(latency, abs=0.002)
    # And written again, the same document (timings to the millisecond).
    again, _ = har_of_view(view(reopened), "0.1.0", reveal=True)
    first_entries = json.loads(data)["log"]["entries"]
    second_entries = json.loads(again)["log"]["entries"]
    for entry in (*first_entries, *second_entries):
        entry.pop("_clientPort")
    assert [e["request"] for e in second_entries] == [e["request"] for e in first_entries]
    assert [e["response"] for e in second_entries] == [e["response"] for e in first_entries]


def test_a_browser_har_opens_too() -> None:
    browser = {
        "log": {
            "version": "1.2",
            "creator": {"name": "WebInspector", "version": "537"},
            "entries": [
                {
                    "startedDateTime": "2026-01-01T10:00:00.000+01:00",
                    "time": 30,
                    "request": {
                        "method": "GET",
                        "url": "https://shop.example/api/cart?id=4",
                        "httpVersion": "h2",
                        "headers": [
                            {"name": ":authority", "value": "shop.example"},
                            {"name": ":path", "value": "/api/cart?id=4"},
                            {"name": "x-user-id", "value": "alice"},
                        ],
                        "queryString": [],
                        "cookies": [],
                        "headersSize": -1,
                        "bodySize": 0,
                    },
                    "response": {
                        "status": 200,
                        "statusText": "",
                        "httpVersion": "h2",
                        "headers": [
                            {"name": "content-encoding", "value": "gzip"},
                            {"name": "content-length", "value": "40"},
                        ],
                        "cookies": [],
                        "content": {
                            "size": 11,
                            "mimeType": "application/json",
                            "text": '{"items":0}',
                        },
                        "redirectURL": "",
                        "headersSize": -1,
                        "bodySize": 40,
                    },
                    "cache": {},
                    "timings": {"send": 1, "wait": 20, "receive": 9},
                }
            ],
        }
    }
    store = Store()
    store.apply([AgentEvent(s, e) for s, e in read_har(json.dumps(browser).encode(), "b.har")])
    (conn,) = store.connections.values()
    (exchange,) = conn.exchanges
    # An HTTP/2 entry reopens as HTTP/2: the authority is the request's host.
    assert (conn.protocol, exchange.request.http_version) == ("h2", "2")
    assert exchange.request.host == "shop.example"
    assert exchange.request.header("x-user-id") == "alice"
    assert exchange.request.target == "/api/cart?id=4"
    assert exchange.status == 200
    assert exchange.response is not None
    # Browsers keep bodies decoded: the replay codes it again, as its header says it was sent.
    assert exchange.response.body.startswith(b"\x1f\x8b")
    assert decode_body(exchange.response).data == b'{"items":0}'
    assert conn.server_port == 443
    assert exchange.started == pytest.approx(1767258000.0)
    assert exchange.latency_ms == pytest.approx(20.0, abs=0.01)


@pytest.mark.parametrize("data", [b"not json", b'{"log": {}}', b"[1, 2]"])
def test_a_file_that_is_not_har_is_one_sentence(data: bytes) -> None:
    from agent.errors import UserError

    with pytest.raises(UserError, match=r"^x\.har is not a HAR file"):
        list(read_har(data, "x.har"))


def test_dump_http_masks_the_same_secrets_unless_revealed() -> None:
    from tui.output.exchange_text import ExchangeTextFormatter

    store = Store()
    change = store.apply(shop_updates())

    def printed(formatter: ExchangeTextFormatter) -> str:
        return formatter.format_change(change, store.get)

    masked = printed(ExchangeTextFormatter())
    assert "Authorization: Bearer ••••••" in masked
    assert "Cookie: session=••••••" in masked
    assert "token-of-alice" not in masked
    assert "x-user-id: alice" in masked
    assert "Authorization: Bearer token-of-alice" in printed(ExchangeTextFormatter(reveal=True))


def test_a_response_whose_request_was_not_captured_round_trips() -> None:
    s = Script().hello()
    s.open(1, "198.18.0.1", 40000, mid_stream=True)
    s.data(1, "out", response(200, b"orphan"))
    s.exchange(1, request("GET", "/next"), response(404))
    store = script_store(s)
    document = har(store)
    first, second = document["log"]["entries"]
    assert first["request"]["method"] == "UNKNOWN"
    assert "the request was not captured" in first["comment"]
    assert first["response"]["content"]["text"] == "orphan"
    assert second["request"]["method"] == "GET"
    data, _ = har_of_view(view(store), "0.1.0", reveal=False)
    reopened = Store()
    reopened.apply([AgentEvent(source, event) for source, event in read_har(data, "x.har")])
    (conn,) = reopened.connections.values()
    assert [(ex.request.method, ex.status, ex.incomplete) for ex in conn.exchanges] == [
        ("", 200, True),
        ("GET", 404, False),
    ]
