"""The HTTP/1.x decoder, on whole streams and on the same streams cut every possible way."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.http_streams import BY_NAME, STREAMS, Stream, replay, summary
from tui.model.flows import Exchange


def exchanges(name: str, body_cap: int = 65_536) -> list[Exchange]:
    conn, _ = replay(BY_NAME[name], body_cap=body_cap)
    return conn.exchanges


def brief(ex: Exchange) -> tuple[str, str, int | None]:
    return (ex.request.method, ex.request.target, ex.status)


def test_keep_alive_pairs_requests_and_responses_with_headers_as_sent() -> None:
    first, second = exchanges("simple-get-keepalive")
    assert brief(first) == ("GET", "/api/items?page=2", 200)
    assert first.request.path == "/api/items"
    assert first.request.host == "shop.example"
    assert first.request.headers[1] == ("User-Agent", "curl/8.5")
    assert first.request.header("x-user-id") == "alice"
    assert first.response is not None
    assert first.response.body.startswith(b'{"user": "alice"')
    assert first.latency_ms == pytest.approx(1000.0)
    assert brief(second) == ("GET", "/api/items/3", 404)
    assert [first.index, second.index] == [0, 1]


def test_post_body_and_created_response() -> None:
    (ex,) = exchanges("post-content-length")
    assert ex.request.body == ex.request.body[:37]
    assert ex.request.body_length == 37
    assert ex.request.complete
    assert ex.response is not None
    assert ex.response.header("location") == "/api/orders/9"


def test_chunked_bodies_and_trailers_in_both_directions() -> None:
    (ex,) = exchanges("chunked-with-trailers")
    assert ex.request.body == b"hello world"
    assert ex.request.trailers == [("X-Checksum", "abc")]
    assert ex.response is not None
    assert ex.response.body == b"abc"
    assert ex.response.trailers == [("X-Time", "12ms")]


def test_the_response_to_head_has_no_body_whatever_its_content_length() -> None:
    head, get = exchanges("head-then-get")
    assert head.response is not None
    assert head.response.body_length == 0
    assert head.response.complete
    assert get.response is not None
    assert get.response.body == b"tiny"


def test_100_continue_is_kept_apart_from_the_final_response() -> None:
    (ex,) = exchanges("expect-100-continue")
    assert [r.status for r in ex.informational] == [100]
    assert ex.status == 204
    assert ex.request.body == b"0123456789"
    # The request ended after the response began (the 100), so latency counts from its start.
    assert ex.request_finished == 3.0
    assert ex.response_started == 4.0


def test_204_and_304_have_no_body() -> None:
    statuses = [
        (ex.status, ex.response.body_length if ex.response else None)
        for ex in exchanges("no-content-and-not-modified")
    ]
    assert statuses == [(204, 0), (304, 0), (200, 5)]


def test_101_switches_the_rest_of_the_connection_to_raw() -> None:
    conn, _ = replay(BY_NAME["websocket-upgrade"])
    (ex,) = conn.exchanges
    assert ex.status == 101
    assert ex.upgraded
    # The websocket frames (even one that looks like a request) are not decoded as HTTP.
    assert b"\x81\x05hello" in conn.raw_out
    assert conn.bytes_in == len(conn.raw_in)


def test_a_declined_upgrade_keeps_decoding_http() -> None:
    assert [brief(ex) for ex in exchanges("upgrade-declined")] == [
        ("GET", "/ws", 426),
        ("GET", "/plain", 200),
    ]


def test_connect_tunnels_the_rest() -> None:
    (ex,) = exchanges("connect-tunnel")
    assert brief(ex) == ("CONNECT", "db.internal:5432", 200)
    assert ex.upgraded
    assert ex.request.path == "db.internal:5432"


def test_http10_body_runs_until_the_connection_closes() -> None:
    (ex,) = exchanges("http10-close-delimited")
    assert ex.request.http_version == "1.0"
    assert ex.response is not None
    assert ex.response.http_version == "1.0"
    assert ex.response.body == b"all of this until the end\n"
    assert ex.response.complete
    assert ex.finished == 4.0


def test_pipelined_requests_pair_in_order_and_head_framing_follows_its_request() -> None:
    assert [brief(ex) for ex in exchanges("pipelined-three")] == [
        ("GET", "/one", 200),
        ("HEAD", "/two", 200),
        ("GET", "/three", 500),
    ]


def test_a_malformed_request_is_shown_with_its_error_and_decoding_resumes() -> None:
    bad, ok = exchanges("malformed-then-valid")
    assert brief(bad) == ("GET", "/bad", 400)
    assert bad.error is not None
    assert "header" in bad.error
    assert brief(ok) == ("GET", "/ok", 200)
    assert ok.error is None


def test_junk_between_requests_is_skipped_without_breaking_the_pairing() -> None:
    conn, _ = replay(BY_NAME["garbage-between-requests"])
    assert [brief(ex) for ex in conn.exchanges] == [
        ("GET", "/before", 200),
        ("POST", "/after", 200),
    ]
    assert len(conn.errors) == 1


def test_a_response_waits_for_its_request_past_junk_however_the_client_bytes_are_cut() -> None:
    """The second response came while the client's junk could still have been a request head:
    it pairs with the request found after the junk, not with a stand-in made half-way."""
    stream = BY_NAME["response-waits-past-junk"]
    expected = [("GET", "/one", 200), ("GET", "/two", 200)]
    last = len(stream.steps) - 1
    for at in range(len(stream.steps[last].data) + 1):
        conn, _ = replay(stream, _cut(last, at))  # type: ignore[arg-type]
        assert [brief(ex) for ex in conn.exchanges] == expected, at
        assert not any(ex.incomplete for ex in conn.exchanges), at


def test_a_response_waiting_for_its_request_outlives_a_gap_in_the_server_bytes() -> None:
    """The third response waits (the client's ``(`` may start its request) when a gap hits
    the server's side: it still pairs with the request read after the junk, and the response
    after the gap gets a stand-in at the close."""
    stream = BY_NAME["response-waiting-at-a-server-gap"]
    for split in _every_cut(stream):
        conn, _ = replay(stream, split)
        assert [brief(ex) for ex in conn.exchanges] == [
            ("GET", "/one", 200),
            ("GET", "/two", 200),
            ("GET", "/three", 200),
            ("", "", 200),
        ]
        bodies = [ex.response.body for ex in conn.exchanges if ex.response is not None]
        assert bodies == [b"one", b"two", b"three", b"four"]
        assert [ex.incomplete for ex in conn.exchanges] == [False, False, False, True]


def test_a_response_waiting_for_its_request_outlives_a_gap_in_the_client_bytes() -> None:
    """The second response waits for a head the client was still sending; that head is lost
    in a gap, so the response gets a stand-in saying why, and the pairing after it holds."""
    stream = BY_NAME["response-waiting-at-a-client-gap"]
    for split in _every_cut(stream):
        conn, _ = replay(stream, split)
        assert [brief(ex) for ex in conn.exchanges] == [
            ("GET", "/one", 200),
            ("", "", 200),
            ("GET", "/three", 200),
        ]
        stand_in = conn.exchanges[1]
        assert stand_in.response is not None
        assert stand_in.response.body == b"two"
        assert stand_in.incomplete
        assert stand_in.notes == [
            "its request may be lost: 30 bytes of the request were not captured"
            " (a gap in the TCP stream)"
        ]


def test_server_junk_with_no_request_waiting_is_skipped_not_given_a_stand_in() -> None:
    """A stand-in request made for junk would wait on and take the next request's response."""
    stream = BY_NAME["server-junk-with-no-request-waiting"]
    for split in _every_cut(stream):
        conn, _ = replay(stream, split)
        assert [brief(ex) for ex in conn.exchanges] == [("GET", "/a", 200), ("GET", "/b", 404)]
        assert not any(ex.incomplete for ex in conn.exchanges)
        assert len(conn.errors) == 1


def test_a_status_line_start_the_stream_ends_on_is_reported_as_junk() -> None:
    """Too few bytes to tell wait for more; at the close there is no more, and they are said."""
    stream = BY_NAME["server-ends-on-a-status-line-start"]
    for split in _every_cut(stream):
        conn, _ = replay(stream, split)
        assert [brief(ex) for ex in conn.exchanges] == [("GET", "/a", 200)]
        assert conn.errors == [
            "the server sent something that is not HTTP: bytes where a status line should start"
        ]


def test_requests_are_read_after_a_declined_upgrade_before_the_next_response() -> None:
    """The server's junk came in the same bytes as the 204 that declined the upgrade: it must
    meet the requests the client sent meanwhile, as it does when it comes in a piece of its
    own, not a stand-in made while they were still held back."""
    stream = BY_NAME["declined-upgrade-then-server-junk"]
    for split in _every_cut(stream):
        conn, _ = replay(stream, split)
        assert [brief(ex) for ex in conn.exchanges] == [
            ("GET", "/chat", 204),
            ("GET", "/one", 200),
            ("GET", "/two", None),
        ]
        assert not conn.exchanges[0].upgraded


def _every_cut(stream: Stream) -> list[Callable[[int, bytes], Sequence[bytes]]]:
    """Whole, byte at a time, and every single cut of every step."""
    splits: list[Callable[[int, bytes], Sequence[bytes]]] = [
        lambda _i, data: [data],
        lambda _i, data: [data[i : i + 1] for i in range(len(data))],
    ]
    for index, step in enumerate(stream.steps):
        splits.extend(_cut(index, at) for at in range(1, len(step.data)))  # type: ignore[misc]
    return splits


def test_a_malformed_response_is_an_error_on_its_exchange() -> None:
    bad, good = exchanges("malformed-response")
    assert bad.error is not None
    assert bad.response is None
    assert brief(good) == ("GET", "/b", 200)


def test_joining_mid_stream_resyncs_on_the_next_request_and_status_lines() -> None:
    conn, _ = replay(BY_NAME["mid-stream-join"])
    assert conn.protocol == "http"
    assert [brief(ex) for ex in conn.exchanges] == [("GET", "/next", 200)]


def test_a_response_without_its_request_gets_a_stand_in() -> None:
    orphan, later = exchanges("mid-stream-response-first")
    assert orphan.request.method == ""
    assert orphan.incomplete
    assert orphan.response is not None
    assert orphan.response.body == b"orphan"
    assert brief(later) == ("GET", "/later", 200)


def test_a_gap_inside_a_content_length_body_keeps_the_framing() -> None:
    big, after = exchanges("gap-in-the-middle-of-a-body")
    assert big.incomplete
    assert big.request.complete
    assert big.request.body_length == 40
    assert big.request.body == b"A" * 10  # nothing after the gap is stored as if contiguous
    assert brief(big)[2] == 200
    assert brief(after) == ("GET", "/next", 200)
    assert not after.incomplete


def test_a_gap_inside_a_chunked_body_ends_it_and_decoding_resyncs() -> None:
    cut, again = exchanges("gap-in-a-chunked-response")
    assert cut.incomplete
    assert cut.response is not None
    assert not cut.response.complete
    assert brief(again) == ("GET", "/again", 200)


def test_tls_client_hello_gives_sni_alpn_and_version() -> None:
    conn, _ = replay(BY_NAME["tls-client-hello"])
    assert conn.protocol == "tls"
    assert conn.tls is not None
    assert (conn.tls.sni, conn.tls.alpn, conn.tls.version) == (
        "api.example.com",
        ["h2", "http/1.1"],
        "TLS 1.3",
    )
    assert conn.exchanges == []


def test_http2_prior_knowledge_goes_to_the_http2_decoder() -> None:
    # The preface and the start of a SETTINGS frame: HTTP/2, with nothing to show yet.
    conn, _ = replay(BY_NAME["http2-prior-knowledge"])
    assert conn.protocol == "h2"
    assert conn.exchanges == []
    assert conn.errors == []


def test_a_server_that_speaks_first_is_plain_tcp() -> None:
    conn, _ = replay(BY_NAME["plain-tcp"])
    assert conn.protocol == "tcp"
    assert conn.exchanges == []
    assert bytes(conn.raw_out).startswith(b"220 mail.example")


def test_a_response_cut_by_the_close_is_an_error_and_an_open_one_is_just_partial() -> None:
    (cut,) = exchanges("closed-mid-response")
    assert cut.error is not None
    assert cut.response is not None
    assert not cut.response.complete
    (partial,) = exchanges("open-connection-partial")
    assert partial.error is None
    assert partial.response is not None
    assert partial.response.body == b"01234"
    assert not partial.response.complete


def test_bodies_are_capped_but_their_length_is_true() -> None:
    (ex,) = exchanges("post-content-length", body_cap=8)
    assert len(ex.request.body) == 8
    assert ex.request.body_length == 37
    assert ex.request.body_truncated


# ------------------------------------------------------------------------ split invariance


def _cut(index: int, at: int) -> object:
    def split(step: int, data: bytes) -> Sequence[bytes]:
        return [data[:at], data[at:]] if step == index else [data]

    return split


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s.name)
def test_every_single_cut_decodes_identically(stream: Stream) -> None:
    expected = summary(replay(stream)[0])
    for index, step in enumerate(stream.steps):
        for at in range(1, len(step.data)):
            got = summary(replay(stream, _cut(index, at))[0])  # type: ignore[arg-type]
            assert got == expected, (stream.name, index, at)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s.name)
def test_byte_at_a_time_decodes_identically(stream: Stream) -> None:
    expected = summary(replay(stream)[0])
    bytewise = replay(stream, lambda _i, data: [data[i : i + 1] for i in range(len(data))])
    one_by_one = summary(bytewise[0])
    assert one_by_one == expected


@st.composite
def cuts(draw: st.DrawFn) -> tuple[Stream, list[list[int]]]:
    stream = draw(st.sampled_from(STREAMS))
    points = [
        sorted(draw(st.sets(st.integers(1, max(1, len(step.data) - 1)), max_size=6)))
        for step in stream.steps
    ]
    return stream, points


@pytest.mark.timeout(60)
@settings(max_examples=300, deadline=None)
@given(cuts())
def test_random_cuts_decode_identically(case: tuple[Stream, list[list[int]]]) -> None:
    stream, points = case

    def split(index: int, data: bytes) -> Sequence[bytes]:
        bounds = [0, *[p for p in points[index] if p < len(data)], len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]

    assert summary(replay(stream, split)[0]) == summary(replay(stream)[0])
