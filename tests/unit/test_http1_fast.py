"""The plain-message reader and h11, side by side: on any bytes, either the reader declines or
it reads exactly what h11 reads (start line, headers as sent, body, where the message ends);
plain messages are read by it; and a connection decodes the same whether its messages arrive
whole (the reader's case) or a byte at a time (h11's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.unit.http_streams import Step, Stream, replay, summary
from tui.model.http1_cache import Http1Cache
from tui.model.http1_fast import MAX_SIMPLE_HEAD, read_request, read_response
from tui.model.http1_framing import MAX_HEAD

pytestmark = pytest.mark.timeout(120)

Reading = tuple[Any, ...] | str | None
"""What was read: the message's parts; "refused" (h11 raised); None (incomplete)."""

# ----------------------------------------------------------------------------- messages

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
plain_token = st.text(TOKEN_CHARS, min_size=1, max_size=12).map(str.encode)
plain_value = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=20
).map(str.encode)

hostile_method = st.sampled_from(
    [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"get", b"G@T", b""]
)
hostile_target = st.sampled_from(
    [b"/", b"/a?b=c", b"http://h/x", b"*", b"h:443", b"/a b", b"/\x7f", b"/\xff", b""]
)
hostile_version = st.sampled_from(
    [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/0.9", b"http/1.1", b"HTTP/1.1 "]
)
hostile_name = st.one_of(
    st.sampled_from(
        [
            b"Host",
            b"host",
            b"HOST",
            b"Content-Length",
            b"content-length",
            b"Transfer-Encoding",
            b"transfer-encoding",
            b"Connection",
            b"Upgrade",
            b"Expect",
            b"X-Id",
            b"X Id",
            b" X-Id",
            b"\tX-Id",
            b"X-Id ",
            b"",
            b"X\x00",
            b"\xc3\xa9",
        ]
    ),
    plain_token,
)
hostile_value = st.one_of(
    st.sampled_from(
        [
            b"5",
            b"0",
            b"05",
            b" 5 ",
            b"5, 5",
            b"5,6",
            b"-1",
            b"1e3",
            b"+5",
            b"99999999999999999999",
            b"999999999999999999999",
            b"chunked",
            b"Chunked",
            b"CHUNKED",
            b"gzip, chunked",
            b"chunked, chunked",
            b"identity",
            b"chunked ",
            b"",
            b"a\tb",
            b"a  b",
            b"\t",
            b"\x01",
            b"\x7f",
            b"\xff\xfe",
            b"a\x00b",
            b"a\x0bb",
            b"a\x0cb",
            b"a\rb",
            b"a\nb",
            b"upgrade",
            b"100-continue",
            b"close",
        ]
    ),
    plain_value,
    st.binary(max_size=6),
)
hostile_colon = st.sampled_from([b":", b": ", b":\t", b":  ", b" :", b"\t:", b""])
hostile_line_end = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b"\r\r\n", b" \r\n", b"\t\r\n"])


LARGE_PADDINGS = (0, 0, 0, 0, 0, 0, 100, MAX_SIMPLE_HEAD - 40, 9000, MAX_HEAD + 100)
SMALL_PADDINGS = (0, 0, 0, 100)


@st.composite
def hostile_head_lines(draw: st.DrawFn, paddings: Sequence[int]) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 9)) == 0:
            # obs-fold: a line continuing the one before
            line = draw(st.sampled_from([b" ", b"\t", b"  "])) + draw(hostile_value)
        else:
            line = draw(hostile_name) + draw(hostile_colon) + draw(hostile_value)
        lines.append(line + draw(hostile_line_end))
    padding = draw(st.sampled_from(paddings))
    if padding:
        lines.insert(draw(st.integers(0, len(lines))), b"X-Pad: " + b"p" * padding + b"\r\n")
    return b"".join(lines)


@st.composite
def hostile_chunks(draw: st.DrawFn) -> bytes:
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        data = draw(st.binary(max_size=12))
        size = draw(st.sampled_from([f"{len(data):x}", f"{len(data):X}", f"0{len(data):x}"]))
        size = draw(st.sampled_from([size] * 5 + [size + ";ext=1", size + " ", "", "x", "-1"]))
        footer = draw(st.sampled_from([b"\r\n"] * 5 + [b"\n", b"", b"xx"]))
        parts.append(size.encode() + b"\r\n" + data + footer)
    last = draw(
        st.sampled_from([b"0\r\n\r\n"] * 5 + [b"0\r\nX-T: 1\r\n\r\n", b"0\r\n\n", b"0\r\n"])
    )
    return b"".join(parts) + last


@st.composite
def hostile_body(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(hostile_chunks())
    return draw(st.binary(max_size=30))


@st.composite
def hostile_requests(draw: st.DrawFn, paddings: Sequence[int] = LARGE_PADDINGS) -> bytes:
    line = (
        draw(hostile_method)
        + draw(st.sampled_from([b" ", b" ", b"  ", b"\t"]))
        + draw(hostile_target)
        + b" "
        + draw(hostile_version)
    )
    start = draw(st.sampled_from([b""] * 8 + [b"\r\n", b"\n", b" "]))
    return (
        start
        + line
        + draw(hostile_line_end)
        + draw(hostile_head_lines(paddings))
        + draw(st.sampled_from([b"\r\n"] * 8 + [b"\n", b""]))
        + draw(hostile_body())
        + draw(st.sampled_from([b"", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"junk"]))
    )


@st.composite
def hostile_responses(draw: st.DrawFn, paddings: Sequence[int] = LARGE_PADDINGS) -> bytes:
    status = draw(
        st.sampled_from([b"200", b"204", b"304", b"100", b"101", b"404", b"099", b"2000"])
    )
    reason = draw(st.sampled_from([b" OK", b"", b" ", b" No\tContent", b" \xff", b" a\x00b"]))
    line = draw(hostile_version) + b" " + status + reason
    return (
        line
        + draw(hostile_line_end)
        + draw(hostile_head_lines(paddings))
        + draw(st.sampled_from([b"\r\n"] * 8 + [b"\n", b""]))
        + draw(hostile_body())
        + draw(st.sampled_from([b"", b"HTTP/1.1 200 OK\r\n\r\n", b"junk"]))
    )


CL_NAMES = st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-length"])
TE_NAMES = st.sampled_from([b"Transfer-Encoding", b"transfer-encoding"])


@st.composite
def plain_requests(draw: st.DrawFn) -> tuple[bytes, bytes]:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"X-CUSTOM"]))
    version = draw(st.sampled_from([b"1.1", b"1.0"]))
    headers = [(draw(st.sampled_from([b"Host", b"host", b"HOST"])), b"example")]
    headers = headers if version == b"1.1" else []
    headers += draw(st.lists(st.tuples(plain_token, plain_value), max_size=6).map(_plain_names))
    body = draw(st.binary(max_size=40))
    if draw(st.booleans()):
        framing = [(draw(TE_NAMES), draw(st.sampled_from([b"chunked", b"Chunked"])))]
        framed = _chunked(body, draw(st.integers(1, 16)))
    else:
        framing = [(draw(CL_NAMES), str(len(body)).encode())] if body else []
        framed = body
    lines = [b"%s / HTTP/%s" % (method, version)]
    lines += [name + b": " + value for name, value in headers + framing]
    return b"\r\n".join(lines) + b"\r\n\r\n" + framed, body


@st.composite
def plain_responses(draw: st.DrawFn) -> tuple[bytes, bytes, str]:
    status = draw(st.sampled_from([200, 201, 204, 304, 404, 500]))
    method = draw(st.sampled_from(["GET", "POST", "HEAD", ""]))
    headers = draw(st.lists(st.tuples(plain_token, plain_value), max_size=6).map(_plain_names))
    body = draw(st.binary(max_size=40))
    if draw(st.booleans()):
        framing = [(draw(TE_NAMES), draw(st.sampled_from([b"chunked", b"Chunked"])))]
        framed = _chunked(body, draw(st.integers(1, 16)))
    else:
        framing = [(draw(CL_NAMES), str(len(body)).encode())]
        framed = body
    if method == "HEAD" or status in (204, 304):
        body = framed = b""
    lines = [b"HTTP/1.1 %d Some Reason" % status]
    lines += [name + b": " + value for name, value in headers + framing]
    return b"\r\n".join(lines) + b"\r\n\r\n" + framed, body, method


def _plain_names(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    framing = {b"host", b"content-length", b"transfer-encoding"}
    return [(b"X-" + name, value) for name, value in headers if name.lower() not in framing]


def _chunked(body: bytes, size: int) -> bytes:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


TWISTS = [
    "obs-fold",
    "bare LF",
    "bare CR",
    "space before colon",
    "second equal Content-Length",
    "second other Content-Length",
    "Content-Length list",
    "Transfer-Encoding variant",
    "Content-Length and Transfer-Encoding",
    "no Host",
    "two Hosts",
    "odd version",
    "odd value",
    "huge head",
    "blank line first",
    "cut short",
    "chunk extension",
    "trailer",
]


@st.composite
def twisted(draw: st.DrawFn, plain: st.SearchStrategy[bytes]) -> bytes:
    """A plain message with one or two of the twists h11 reads its own way, or refuses."""
    data = draw(plain)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for twist in draw(st.lists(st.sampled_from(TWISTS), min_size=1, max_size=2)):
        at = draw(st.integers(1, len(lines)))
        if twist == "obs-fold":
            lines.insert(at, draw(st.sampled_from([b" folded", b"\tfolded", b" "])))
        elif twist in ("bare LF", "bare CR"):
            end = b"\n" if twist == "bare LF" else b"\r"
            lines[at - 1] += end + lines.pop(at) if at < len(lines) else end
        elif twist == "space before colon":
            lines[at - 1] = lines[at - 1].replace(b":", b" :", 1)
        elif twist.endswith("Content-Length"):
            same = [
                v
                for line in lines
                if line.lower().startswith(b"content-length:")
                for v in [line.split(b":", 1)[1].strip()]
            ]
            value = same[0] if same and "equal" in twist else b"7"
            lines.insert(at, b"Content-Length: " + value)
        elif twist == "Content-Length list":
            lines.insert(at, b"Content-Length: 3, 3")
        elif twist == "Transfer-Encoding variant":
            value = draw(
                st.sampled_from(
                    [
                        b"Chunked",
                        b"gzip, chunked",
                        b"chunked, chunked",
                        b"identity",
                        b"chunked ",
                        b"CHUNKED",
                    ]
                )
            )
            lines.insert(at, b"Transfer-Encoding: " + value)
        elif twist == "Content-Length and Transfer-Encoding":
            lines[at:at] = [b"Content-Length: 3", b"Transfer-Encoding: chunked"]
        elif twist == "no Host":
            lines = [line for line in lines if not line.lower().startswith(b"host:")] or [b""]
        elif twist == "two Hosts":
            lines.insert(at, b"Host: other")
        elif twist == "odd version":
            version = draw(st.sampled_from([b"HTTP/2.0", b"HTTP/1.2", b"HTTP/0.9", b"http/1.1"]))
            lines[0] = lines[0].replace(b"HTTP/1.1", version).replace(b"HTTP/1.0", version)
        elif twist == "odd value":
            value = draw(
                st.sampled_from(
                    [b"a\tb", b"a \t b", b"\x01", b"\x7f", b"a\x0bb", b"\xff", b"", b" ", b"x\x00"]
                )
            )
            lines.insert(at, b"X-Odd:" + value + draw(st.sampled_from([b"", b" ", b"\t"])))
        elif twist == "huge head":
            size = draw(st.sampled_from([MAX_SIMPLE_HEAD - 60, MAX_SIMPLE_HEAD, MAX_HEAD + 10]))
            lines.insert(at, b"X-Pad: " + b"p" * size)
        elif twist == "blank line first":
            lines[0] = b"\r\n" + lines[0]
        elif twist == "cut short":
            body = body[: draw(st.integers(0, len(body)))]
        elif twist == "chunk extension":
            body = body.replace(b"\r\n", b";x=1\r\n", 1)
        elif twist == "trailer":
            body = body.replace(b"0\r\n\r\n", b"0\r\nX-Trailer: 1\r\n\r\n")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# ----------------------------------------------------------------------------- h11's reading


def h11_reads(connection: h11.Connection, data: bytes, head: tuple[Any, ...] = ()) -> Reading:
    """h11's reading of the message ``data`` starts with; ``head`` is the start line and
    headers when ``connection`` has already read a head (the plain reader's)."""
    if data:  # (no bytes would tell h11 of the close)
        connection.receive_data(data)
    kinds = [] if not head else ["Request" if isinstance(head[0], bytes) else "Response"]
    body = []
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return None
            if isinstance(event, (h11.Request, h11.Response, h11.InformationalResponse)):
                head = (*_first_line(event), event.headers.raw_items())
                kinds.append(type(event).__name__)
            elif isinstance(event, h11.Data):
                body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                consumed = len(data) - len(connection.trailing_data[0])
                trailers = event.headers.raw_items()
                return (*head, b"".join(body), consumed, trailers, kinds)
    except h11.RemoteProtocolError:
        return "refused"


def _first_line(head: h11.Request | h11.Response | h11.InformationalResponse) -> tuple[Any, ...]:
    if isinstance(head, h11.Request):
        return head.method, head.target, head.http_version
    return head.status_code, head.reason, head.http_version


def h11_request(data: bytes) -> Reading:
    return h11_reads(h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD), data)


def h11_response(data: bytes, method: str) -> Reading:
    client = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    client.send(h11.Request(method=method or "GET", target="/", headers=[("host", "podtap")]))
    client.send(h11.EndOfMessage())
    return h11_reads(client, data)


def fast_request(data: bytes) -> Reading:
    """The plain reader's reading; a body it leaves to h11 is read by h11 after the head."""
    read = read_request(bytearray(b"\n" + data), 1)
    if read is None:
        return None
    head = (read.method, read.target, read.http_version, read.headers)
    if read.body is None:
        rest = h11_reads(CACHE.request_body_parser(read.framing), data[read.end - 1 :], head)
        return _after(rest, read.end - 1)
    return (*head, read.body, read.end - 1, [], ["Request"])


def fast_response(data: bytes, method: str) -> Reading:
    read = read_response(bytearray(b"\n" + data), 1, method)
    if read is None:
        return None
    head = (read.status_code, read.reason, read.http_version, read.headers)
    if read.body is None:
        parser = CACHE.response_body_parser(method, read.framing)
        return _after(h11_reads(parser, data[read.end - 1 :], head), read.end - 1)
    return (*head, read.body, read.end - 1, [], ["Response"])


def _after(reading: Reading, head_size: int) -> Reading:
    """A reading of the bytes after a head, as a reading of the whole message."""
    if not isinstance(reading, tuple):
        return reading
    *head, body, consumed, trailers, kinds = reading
    return (*head, body, head_size + consumed, trailers, kinds)


CACHE = Http1Cache()


# ----------------------------------------------------------------------------- the properties

SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.one_of(hostile_requests(), twisted(plain_requests().map(lambda m: m[0]))))
@example(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
@example(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello")
@example(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n")
@example(b"GET / HTTP/1.1\nHost: a\n\n")
@example(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\n\r\n")
@example(b"GET / HTTP/1.1\r\n\r\n")
@example(b"GET / HTTP/1.0\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
@example(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n")
def test_a_request_is_read_as_h11_reads_it_or_left_to_h11(data: bytes) -> None:
    fast = fast_request(data)
    if fast is not None:
        assert h11_request(data) == fast


@SETTINGS
@given(
    st.one_of(hostile_responses(), twisted(plain_responses().map(lambda m: m[0]))),
    st.sampled_from(["GET", "HEAD", "POST", "CONNECT", ""]),
)
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "GET")
@example(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", "GET")
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "HEAD")
@example(b"HTTP/1.1 200 OK\r\n\r\nuntil the close", "GET")
@example(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "GET")
@example(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nhi\r\n0\r\n\r\n", "GET")
@example(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n", "GET")
@example(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\n\r\n", "GET")
@example(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", "GET")
def test_a_response_is_read_as_h11_reads_it_or_left_to_h11(data: bytes, method: str) -> None:
    fast = fast_response(data, method)
    if fast is not None:
        assert h11_response(data, method) == fast


@settings(max_examples=300, deadline=None)
@given(plain_requests(), st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"\x16\x03"]))
def test_plain_requests_are_read_without_h11(request: tuple[bytes, bytes], after: bytes) -> None:
    data, body = request
    fast = fast_request(data + after)
    assert fast is not None
    assert fast[4] == body
    assert fast[5] == len(data)
    assert h11_request(data + after) == fast


@settings(max_examples=300, deadline=None)
@given(plain_responses(), st.sampled_from([b"", b"HTTP/1.1 200 OK\r\n", b"junk"]))
def test_plain_responses_are_read_without_h11(
    response: tuple[bytes, bytes, str], after: bytes
) -> None:
    data, body, method = response
    fast = fast_response(data + after, method)
    assert fast is not None
    assert fast[4] == body
    assert fast[5] == len(data)
    assert h11_response(data + after, method) == fast


def test_heads_past_the_first_piece_are_left_to_h11_and_so_are_bodies_still_coming() -> None:
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * MAX_SIMPLE_HEAD + b"\r\n\r\n"
    assert fast_request(big) is None
    assert h11_request(big) not in (None, "refused")
    coming = read_request(
        bytearray(b"\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc"), 1
    )
    assert coming is not None
    assert (coming.body, coming.framing) == (None, b"Content-Length: 9\r\n")
    chunks = bytearray(b"\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi")
    answer = read_response(chunks, 1, "GET")
    assert answer is not None
    assert (answer.body, answer.framing) == (None, b"Transfer-Encoding: chunked\r\n")


# ----------------------------------------------------------------------------- the decoder

fragment = st.one_of(
    hostile_requests(SMALL_PADDINGS), hostile_responses(SMALL_PADDINGS), st.binary(max_size=8)
)


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["in", "out", "in", "out", "gap-in", "gap-out"]))
        if kind.startswith("gap"):
            steps.append(Step(kind, length=draw(st.integers(1, 40))))  # type: ignore[arg-type]
        else:
            plain = plain_requests() if kind == "in" else plain_responses()
            data = b"".join(
                draw(
                    st.lists(st.one_of(plain.map(lambda m: m[0]), fragment), min_size=1, max_size=3)
                )
            )
            steps.append(Step(kind, data))  # type: ignore[arg-type]
    return Stream(
        "differential", tuple(steps), mid_stream=draw(st.booleans()), closed=draw(st.booleans())
    )


def byte_at_a_time(_index: int, data: bytes) -> Sequence[bytes]:
    """No head is ever whole when its message starts: h11 reads every message."""
    return [data[i : i + 1] for i in range(len(data))]


@pytest.mark.timeout(300)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
@example(  # A response waiting while the client's next head was junk, then a gap.
    Stream(
        "differential",
        (
            Step("in", b"GET / HTTP/1.1\r\nHost: example\r\n\r\n" * 2 + b"("),
            Step("out", b"HTTP/1.1 200 Some Reason\r\nContent-Length: 0\r\n\r\n" * 3),
            Step("gap-out", length=1),
            Step("out", b"HTTP/1.1 200 Some Reason\r\nContent-Length: 0\r\n\r\n"),
            Step(
                "in",
                b"X-CUSTOM / HTTP/1.1\r\nHost: example\r\n\r\n"
                b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
            ),
        ),
        closed=False,
    )
)
def test_a_connection_decodes_the_same_read_whole_or_by_h11(stream: Stream) -> None:
    whole = summary(replay(stream)[0])
    assert summary(replay(stream, byte_at_a_time)[0]) == whole


def test_the_bounds_hold_when_messages_arrive_whole() -> None:
    """Ambiguous framing noted, a head over 64 KiB refused, at most five 1xx kept."""
    smuggle = (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    # Past the 64 KiB and the piece h11 is handed at once, so that how it is cut cannot matter.
    huge = b"GET /huge HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * (MAX_HEAD + 9000) + b"\r\n\r\n"
    ok = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"
    early = b"HTTP/1.1 100 Continue\r\n\r\n" * 9
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    stream = Stream("bounds", (Step("in", smuggle + huge + ok), Step("out", early + answer * 3)))
    conn, _ = replay(stream)
    smuggled, refused, fine = conn.exchanges
    assert smuggled.notes[0].startswith("request: ambiguous framing")
    assert len(smuggled.informational) == 5
    assert "head too large" in (refused.error or "")
    assert (fine.request.path, fine.status) == ("/ok", 200)
    assert summary(conn) == summary(replay(stream, byte_at_a_time)[0])
