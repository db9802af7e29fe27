"""The HTTP/2 decoder on conversations recorded from real peers (nghttp/nghttpd, curl/hypercorn,
grpcio), whole, joined late, with losses, and cut every way."""

from __future__ import annotations

import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tests.unit.h2_streams import recording, replay
from tui.model.grpc import call_message, call_status
from tui.model.http2 import JOINED_MID_STREAM
from tui.model.http2_frames import PREFACE, looks_like_http2
from tui.model.protobuf_raw import render

pytestmark = pytest.mark.timeout(60)
PAGE = b"<h1>hello</h1>\n" * 20
BIG = bytes(range(256)) * 400


def test_concurrent_nghttp_streams_are_one_exchange_each_with_what_was_sent() -> None:
    conn, _, _ = replay(recording("nghttp-concurrent"))
    assert conn.protocol == "h2"
    page, big, missing = conn.exchanges
    assert [ex.stream_id for ex in conn.exchanges] == [13, 15, 17]
    assert [ex.index for ex in conn.exchanges] == [0, 1, 2]
    assert (page.request.method, page.request.target, page.request.http_version) == (
        "GET",
        "/page.html",
        "2",
    )
    assert page.request.host.startswith("127.0.0.1:")
    assert page.request.header("x-user-id") == "alice"
    assert page.request.header("user-agent") == "nghttp2/1.52.0"
    assert not any(name.startswith(":") for name, _ in page.request.headers)
    assert page.request.complete
    assert page.response is not None
    assert (page.response.status, page.response.http_version) == (200, "2")
    assert page.response.body == PAGE
    assert page.response.header("content-type") == "text/html"
    assert big.response is not None
    assert big.response.body_length == len(BIG)
    assert big.response.body == BIG[:65_536]
    assert big.response.complete
    assert missing.status == 404
    assert all(ex.latency_ms is not None and not ex.incomplete for ex in conn.exchanges)
    assert conn.errors == []


def test_a_request_body_is_kept_and_counted() -> None:
    conn, _, _ = replay(recording("nghttp-post"))
    (post,) = conn.exchanges
    assert post.request.method == "POST"
    assert post.request.body == b"name=podtap&kind=tap\n"
    assert post.request.header("content-length") == "21"
    assert post.status == 200


def test_curl_with_prior_knowledge() -> None:
    conn, _, _ = replay(recording("curl-prior-knowledge"))
    (ex,) = conn.exchanges
    assert (ex.stream_id, ex.request.method, ex.request.target, ex.request.path) == (
        1,
        "POST",
        "/submit?x=1",
        "/submit",
    )
    assert ex.request.body == b"hello=1"
    assert ex.response is not None
    assert ex.response.body == b"POST /submit 7\n"
    assert ex.response.header("x-app") == "demo"


def test_grpc_calls_of_every_kind_list_their_messages_and_status() -> None:
    conn, _, _ = replay(recording("grpc-calls"))
    assert conn.protocol == "grpc"
    unary, server_streaming, client_streaming, bidi, failed = conn.exchanges
    assert unary.request.path == "/podtap.demo.Greeter/SayHello"
    assert next((m.direction, render(m.data)) for m in unary.messages) == ("in", '1: "alice"')
    reply = render(unary.messages[1].data)
    assert '3: "hello alice"' in reply
    assert '1: "greeting"' in reply
    assert unary.response is not None
    assert unary.response.reason == "OK"
    assert call_status(unary) == ("0", "OK")
    assert [render(m.data) for m in server_streaming.messages if m.direction == "out"] == [
        "1: 1000",
        "1: 2000",
        "1: 3000",
    ]
    assert [m.direction for m in client_streaming.messages] == ["in", "in", "in", "out"]
    assert render(client_streaming.messages[-1].data) == "1: [3, 5, 7]\n2: [15]"
    assert [render(m.data) for m in bidi.messages if m.direction == "out"] == [
        '1: "ONE"',
        '1: "THREE"',
        '1: "FIFTEEN"',
    ]
    assert all(m.kind == "grpc" and m.length == len(m.data) for m in bidi.messages)
    assert call_status(failed) == ("5", "NOT_FOUND")
    assert call_message(failed) == "no such person: nobody"
    assert failed.response is not None
    assert (failed.response.status, failed.response.reason) == (200, "NOT_FOUND")


def test_gzip_compressed_grpc_messages_are_inflated() -> None:
    conn, _, _ = replay(recording("grpc-gzip"))
    (call,) = conn.exchanges
    sent = call.messages[0]
    assert sent.note.startswith("compressed (gzip")
    assert sent.length < len(sent.data)
    assert render(sent.data) == '1: "' + "gzip " * 40 + '"'


def test_joined_mid_stream_later_calls_appear_with_what_could_not_be_decoded_marked() -> None:
    full, _, _ = replay(recording("grpc-calls"))
    late, _, _ = replay(recording("grpc-calls")[8:], joined_late=True)
    by_stream = {ex.stream_id: ex for ex in full.exchanges}
    assert [ex.stream_id for ex in late.exchanges] == [3, 5, 7, 9]
    for ex in late.exchanges:
        truth = by_stream[ex.stream_id]
        # Nothing invented: every header decoded is one the peer sent, in order.
        assert all(header in truth.request.headers for header in ex.request.headers)
        if ex.request.headers != truth.request.headers:
            assert JOINED_MID_STREAM in ex.notes
        assert ex.messages
        assert [m.data for m in ex.messages] == [m.data for m in truth.messages]
    assert late.exchanges[0].request.target == "/podtap.demo.Greeter/Count"
    # The last call's path was a table entry from before the join: unknown, not guessed.
    assert late.exchanges[-1].request.path == ""
    assert late.protocol == "grpc"


def test_a_capture_that_began_on_a_long_lived_grpc_connection() -> None:
    # Recorded by podtap itself: three calls before the capture began, three after. Every
    # header field of the later calls refers to a table entry sent before: none is guessed.
    conn, _, _ = replay(recording("grpc-joined-late"), joined_late=True)
    assert [ex.stream_id for ex in conn.exchanges] == [7, 9, 11]
    assert conn.protocol == "grpc"
    for ex, name in zip(conn.exchanges, ("after-1", "after-2", "after-3"), strict=True):
        assert ex.notes == [JOINED_MID_STREAM]
        assert (ex.request.method, ex.request.path, ex.request.headers) == ("POST", "", [])
        assert ex.status == 200
        assert render(ex.messages[0].data) == f'1: "{name}"'
        assert f'3: "hello {name}"' in render(ex.messages[1].data)


def test_joined_in_the_middle_of_a_frame_resynchronises_on_the_next_one() -> None:
    chunks = list(recording("nghttp-concurrent")[2:])
    chunks[0] = (chunks[0][0], chunks[0][1][7:])
    conn, decoder, _ = replay(chunks, joined_late=True)
    assert conn.exchanges == []  # the requests were before the join: nothing to pair with
    assert decoder._out.reader.synced


def test_a_loss_marks_the_streams_it_cut_and_the_rest_still_decodes() -> None:
    chunks = recording("nghttp-concurrent")
    conn, decoder, sink = replay(chunks[:3], close=False)
    decoder.gap("out", 5000, 10.0, sink)
    for index, (direction, data) in enumerate(chunks[3:]):
        decoder.feed(direction, data, 11.0 + index, sink)
    decoder.close(20.0, sink)
    page, big, missing = conn.exchanges
    assert page.response is not None
    assert not page.incomplete
    assert big.incomplete
    assert missing.incomplete or missing.status == 404


def _frames(*frames: object) -> bytes:
    return b"".join(frame.serialize() for frame in frames)  # type: ignore[attr-defined]


def test_continuation_padding_priority_reset_and_goaway() -> None:
    client, server = hpack.Encoder(), hpack.Encoder()
    block = client.encode(
        [(":method", "GET"), (":path", "/slow"), (":authority", "a"), (":scheme", "http")]
        + [(f"x-h{i}", "v" * 30) for i in range(20)]
    )
    head = HeadersFrame(1, block[:100], flags=["PADDED", "PRIORITY", "END_STREAM"], pad_length=7)
    more = ContinuationFrame(1, block[100:], flags=["END_HEADERS"])
    second = HeadersFrame(
        3, client.encode([(":method", "GET"), (":path", "/b")]), flags=["END_HEADERS"]
    )
    answer = HeadersFrame(1, server.encode([(":status", "200")]), flags=["END_HEADERS"])
    data = DataFrame(1, b"partial", flags=["PADDED"], pad_length=3)
    chunks: list[tuple[str, bytes]] = [
        ("in", PREFACE + _frames(SettingsFrame(0), head, more, PriorityFrame(1, depends_on=0))),
        ("in", _frames(second)),
        ("out", _frames(SettingsFrame(0), answer, data)),
        ("in", _frames(RstStreamFrame(1, error_code=8))),
        ("out", _frames(GoAwayFrame(0, last_stream_id=1, error_code=0))),
    ]
    conn, _, _ = replay(chunks)  # type: ignore[arg-type]
    slow, other = conn.exchanges
    assert slow.request.path == "/slow"
    assert slow.request.header("x-h19") == "v" * 30
    assert slow.response is not None
    assert slow.response.body == b"partial"
    assert slow.notes == ["reset by the client (CANCEL)"]
    assert not slow.response.complete
    assert other.notes == [
        "the server sent GOAWAY (NO_ERROR, last stream 1): this stream was not processed"
    ]


def test_a_response_for_a_stream_never_requested_is_not_invented() -> None:
    server = hpack.Encoder()
    frames = _frames(HeadersFrame(5, server.encode([(":status", "200")]), flags=["END_HEADERS"]))
    conn, _, _ = replay([("out", frames)])
    assert conn.exchanges == []


def test_http2_is_told_from_other_bytes_in_the_middle_of_a_connection() -> None:
    late = recording("grpc-joined-late")
    assert looks_like_http2(late[0][1])
    assert looks_like_http2(late[3][1][5:])  # from inside a frame
    assert not looks_like_http2(b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n" * 3)
    assert not looks_like_http2(b"\x17\x03\x03\x01\x00" + bytes(range(256)))
    assert not looks_like_http2(bytes(range(256)) * 8)


@pytest.mark.parametrize(("allowed", "found"), [(65_536, True), (None, False)])
def test_resynchronising_believes_frames_as_long_as_the_receiver_allowed(
    allowed: int | None, found: bool
) -> None:
    client = hpack.Encoder()
    settings = SettingsFrame(0, settings={SettingsFrame.MAX_FRAME_SIZE: allowed} if allowed else {})
    request = [(":method", "POST"), (":path", "/upload"), (":authority", "a")]
    first = HeadersFrame(1, client.encode(request), flags=["END_HEADERS"])
    second = HeadersFrame(3, client.encode(request), flags=["END_HEADERS"])
    conn, decoder, sink = replay(
        [("in", PREFACE + _frames(SettingsFrame(0), first)), ("out", _frames(settings))],
        close=False,
    )
    decoder.gap("in", 100, 2.0, sink)
    decoder.feed(
        "in", _frames(second, DataFrame(3, bytes(40_000), flags=["END_STREAM"])), 3.0, sink
    )
    decoder.close(4.0, sink)
    later = [ex for ex in conn.exchanges if ex.stream_id == 3]
    assert bool(later) is found
    if found:
        assert later[0].request.body_length == 40_000
        assert later[0].request.complete
