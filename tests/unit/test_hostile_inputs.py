"""Traffic crafted to cost the client time or memory decodes in time and memory bounded by its
size, and ambiguous framing is decoded as HTTP/1.1 says and flagged."""

from __future__ import annotations

import time
from collections.abc import Iterable

import pytest

from agent.events import AnyEvent, ConnectionOpened, DataReceived
from tui.model.filters import parse_filter
from tui.model.flows import Exchange
from tui.model.store import Store
from tui.model.updates import AgentEvent

pytestmark = pytest.mark.timeout(120)

SEGMENT = 1448


def feed(pieces: Iterable[tuple[str, bytes]], segment: int = SEGMENT) -> tuple[Store, float]:
    """A fresh store fed the pieces, cut into segments; and the CPU seconds it took."""
    events: list[AnyEvent] = [
        ConnectionOpened(
            ts=1.0,
            conn=0,
            client="198.18.0.1",
            client_port=40000,
            server="198.18.0.2",
            server_port=80,
        )
    ]
    for direction, data in pieces:
        for start in range(0, len(data), segment):
            events.append(
                DataReceived(
                    ts=1.0,
                    conn=0,
                    direction=direction,  # type: ignore[arg-type]
                    data=data[start : start + segment],
                )
            )
    updates = [AgentEvent("local", event) for event in events]
    store = Store()
    started = time.process_time()
    for start in range(0, len(updates), 1000):
        store.apply(updates[start : start + 1000])
    return store, time.process_time() - started


def exchanges(store: Store) -> list[Exchange]:
    return store.connections[("local", 0)].exchanges


def ordinary(size: int) -> list[tuple[str, bytes]]:
    pieces: list[tuple[str, bytes]] = []
    sent = n = 0
    while sent < size:
        request = f"GET /items/{n} HTTP/1.1\r\nHost: shop\r\nAccept: */*\r\n\r\n".encode()
        pieces += [("in", request), ("out", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]
        sent += len(request)
        n += 1
    return pieces


@pytest.fixture(scope="module")
def ordinary_seconds() -> float:
    """The reference: 1 MB of ordinary requests and their answers (the best of three)."""
    return min(feed(ordinary(1_000_000))[1] for _ in range(3))


def within(seconds: float, reference: float) -> bool:
    # bench/bench_hostile.py measures the ratio (at most 5x); here, room for a busy machine.
    return seconds <= 10 * reference + 0.5


def test_a_head_of_request_lines_fails_once_per_head_not_once_per_line(
    ordinary_seconds: float,
) -> None:
    store, seconds = feed([("in", b"GET / HTTP/1.1\r\n" * 65_536)])
    assert within(seconds, ordinary_seconds), seconds
    errors = {exchange.error for exchange in exchanges(store)}
    assert errors == {"malformed request: head too large (over 64 KiB)"}
    assert len(exchanges(store)) <= 1_048_576 // 65_536  # one per 64 KiB head, at most


def test_a_malformed_head_is_skipped_whole() -> None:
    bad = b"GET /a HTTP/1.1\r\n" + b"GET / HTTP/1.1\r\n" * 1000 + b"\r\n"
    store, _ = feed([("in", bad + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")])
    assert [(ex.request.target, ex.error is not None) for ex in exchanges(store)] == [
        ("/a", True),
        ("/b", False),
    ]


def test_thousands_of_informational_responses_keep_a_few(ordinary_seconds: float) -> None:
    head = b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"
    store, seconds = feed(
        [
            ("in", head),
            (
                "out",
                b"HTTP/1.1 100 Continue\r\n\r\n" * 40_000
                + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
        ]
    )
    assert within(seconds, ordinary_seconds), seconds
    (exchange,) = exchanges(store)
    assert len(exchange.informational) == 5
    assert exchange.status == 200
    assert exchange.notes == ["more than 5 informational (1xx) responses: only the first are kept"]


def test_a_stream_scanned_a_byte_at_a_time_is_scanned_once(ordinary_seconds: float) -> None:
    """What looks like a request line that never ends, joined mid-stream, in 1-byte segments:
    each resync used to rescan the last 8 KiB (200 KB took 42 s)."""
    junk = b"GET /" + b"a" * 100_000
    _, seconds = feed([("in", junk)], segment=1)
    _, reference = feed([("in", b"".join(d for s, d in ordinary(100_000) if s == "in"))], segment=1)
    assert within(seconds, reference), (seconds, reference)


def test_a_legal_head_up_to_64_kib_is_decoded_and_a_larger_one_is_too_large() -> None:
    fields = b"".join(b"X-Field-%d: %s\r\n" % (n, b"v" * 100) for n in range(400))  # ~44 KiB
    store, _ = feed(
        [
            ("in", b"GET /big HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"),
            ("out", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ]
    )
    (exchange,) = exchanges(store)
    assert (exchange.error, exchange.status, len(exchange.request.headers)) == (None, 204, 401)
    store, _ = feed([("in", b"GET /huge HTTP/1.1\r\nHost: x\r\n" + fields * 2 + b"\r\n")])
    (exchange,) = exchanges(store)
    assert (exchange.request.target, exchange.error) == (
        "/huge",
        "malformed request: head too large (over 64 KiB)",
    )


def test_content_length_with_chunked_is_decoded_by_the_chunks_and_flagged() -> None:
    smuggled = (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    store, _ = feed(
        [
            ("in", smuggled + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("out", b"HTTP/1.1 204 No Content\r\n\r\n" * 2),
        ]
    )
    first, second = exchanges(store)
    assert (first.request.body, first.status, second.request.target) == (b"abc", 204, "/b")
    assert first.notes == [
        "request: ambiguous framing: both Content-Length and Transfer-Encoding; decoded by "
        "Transfer-Encoding, as HTTP/1.1 says (RFC 9112, 6.3)"
    ]
    errors = parse_filter("~err")
    conn = store.connections[("local", 0)]
    assert [errors.evaluate(conn, ex) for ex in (first, second)] == [True, False]


def test_two_different_content_lengths_are_an_error_said_as_ambiguous_framing() -> None:
    store, _ = feed(
        [
            (
                "in",
                b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                b"Content-Length: 4\r\n\r\nabcd",
            ),
            ("out", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
        ]
    )
    (exchange,) = exchanges(store)
    assert exchange.error == (
        "malformed request: ambiguous framing: two different Content-Lengths; HTTP/1.1 makes "
        "such a message invalid (RFC 9112, 6.3)"
    )
    assert exchange.status == 400
    assert parse_filter("~err").evaluate(store.connections[("local", 0)], exchange)
