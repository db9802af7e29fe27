"""No response the server sent whole disappears at a gap or a loss, whatever the client sent.

A response can wait for its request (the client's next head is still being read, or junk may
start one); a gap or a loss meanwhile must neither drop it nor shift the pairings after it.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.unit.http_streams import Collected, Step, Stream, replay
from tests.unit.test_http1_fast import plain_requests
from tui.model.flows import Connection
from tui.model.http import ConnectionDecoder

_CLIENT_JUNK = st.sampled_from([b"(", b"GET /pa", b"\r\n", b"junk\r\n", b"X"])


@st.composite
def client_steps(draw: st.DrawFn) -> Step:
    if draw(st.integers(0, 4)) == 0:
        return Step("gap-in", length=draw(st.integers(1, 40)))
    parts = draw(
        st.lists(st.one_of(plain_requests().map(lambda m: m[0]), _CLIENT_JUNK), max_size=3)
    )
    return Step("in", b"".join(parts) or b"(")


@st.composite
def gappy_streams(draw: st.DrawFn) -> tuple[Stream, list[bytes]]:
    """Whole responses, each with a body of its own, among client bytes and gaps."""
    # The client speaks first, else the connection is not taken for HTTP.
    steps: list[Step] = [Step("in", draw(plain_requests())[0])]
    sent: list[bytes] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["in", "out", "gap-out"]))
        if kind == "in":
            steps.append(draw(client_steps()))
        elif kind == "gap-out":
            steps.append(Step("gap-out", length=draw(st.integers(1, 40))))
        else:
            data = b""
            for _ in range(draw(st.integers(1, 3))):
                body = f"<{len(sent)}>".encode()
                sent.append(body)
                status = draw(st.sampled_from([b"200 OK", b"404 Not Found", b"500 Oops"]))
                data += b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
            steps.append(Step("out", data))
    return Stream("gappy", tuple(steps)), sent


_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"


def _byte_at_a_time(_index: int, data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@pytest.mark.timeout(300)
@settings(max_examples=300, deadline=None)
@given(gappy_streams())
@example(  # After a held gap, a response read a byte at a time: too few bytes to tell yet.
    (
        Stream(
            "gappy",
            (
                Step("in", b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"),
                Step("gap-out", length=1),
                Step("in", b"("),
                Step("out", _OK + b"<0>" + _OK + b"<1>"),
                Step("gap-out", length=1),
                Step("out", _OK + b"<2>"),
                Step("out", _OK + b"<3>"),
            ),
        ),
        [b"<0>", b"<1>", b"<2>", b"<3>"],
    )
)
def test_every_response_captured_whole_comes_out_in_order(case: tuple[Stream, list[bytes]]) -> None:
    stream, sent = case
    for conn in (replay(stream)[0], replay(stream, _byte_at_a_time)[0]):
        read = [ex.response.body for ex in conn.exchanges if ex.response is not None]
        assert read == sent


def _waiting_response(decoder: ConnectionDecoder, sink: Collected) -> None:
    """Two requests and the start of a third, three responses: the third waits for its
    request's head to end."""
    head = b"GET /%s HTTP/1.1\r\nHost: shop.example\r\n\r\n"
    decoder.feed("in", head % b"a" + head % b"b" + (head % b"c")[:10], 1.0, sink)
    for body in (b"a", b"b", b"c"):
        decoder.feed("out", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + body, 2.0, sink)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("agent_gone", [False, True])
def test_a_loss_gives_a_waiting_response_a_stand_in_that_says_so(agent_gone: bool) -> None:
    conn = Connection(
        key=("local", 1),
        source="local",
        conn=1,
        client="10.0.0.1",
        client_port=40000,
        server="10.0.0.2",
        server_port=80,
        opened=0.0,
        mid_stream=False,
    )
    decoder = ConnectionDecoder(conn)
    sink = Collected()
    _waiting_response(decoder, sink)
    assert len(conn.exchanges) == 2
    decoder.lost("events were lost", 3.0, sink)
    if agent_gone:
        decoder.close(3.0, sink)
    *answered, stand_in = conn.exchanges
    assert [ex.request.target for ex in answered] == ["/a", "/b"]
    assert stand_in.request.method == ""
    assert stand_in.response is not None
    assert stand_in.response.body == b"c"
    assert stand_in.incomplete
    assert stand_in.notes == ["its request may be lost: events were lost"]
