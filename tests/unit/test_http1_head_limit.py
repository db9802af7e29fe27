"""The 64 KiB head limit is exact and does not depend on how the bytes arrive: a head (start
line, header fields, blank line) of ``MAX_HEAD`` bytes decodes, one a byte longer is "head too
large", for requests and responses, whether it comes whole, in TCP-sized segments or cut
anywhere, and the message after it decodes the same either way."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.unit.http_streams import Splitter, Step, Stream, replay, summary
from tui.model.flows import Exchange
from tui.model.http1_fast import MAX_SIMPLE_HEAD
from tui.model.http1_framing import MAX_HEAD

pytestmark = pytest.mark.timeout(120)

NEXT_REQUEST = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
NEXT_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def head(first_line: bytes, size: int, newline: bytes = b"\r\n", lines: int = 1) -> bytes:
    """A head of exactly ``size`` bytes: ``first_line``, padding spread over ``lines`` header
    lines, and the blank line."""
    start = first_line + newline
    padding = size - len(start) - len(newline) - lines * (len(b"X-Pad-00: ") + len(newline))
    assert padding >= lines
    share, extra = divmod(padding, lines)
    fields = [
        b"X-Pad-%02d: " % index + b"p" * (share + (index < extra)) + newline
        for index in range(lines)
    ]
    made = start + b"".join(fields) + newline
    assert len(made) == size
    return made


def request_head(size: int, newline: bytes = b"\r\n", lines: int = 1) -> bytes:
    return head(b"GET /big HTTP/1.1" + newline + b"Host: a", size, newline, lines)


def response_head(size: int, newline: bytes = b"\r\n", lines: int = 1) -> bytes:
    return head(b"HTTP/1.1 200 OK" + newline + b"Content-Length: 3", size, newline, lines)


def pieces_of(size: int) -> Splitter:
    def split(_index: int, data: bytes) -> Sequence[bytes]:
        return [data[at : at + size] for at in range(0, len(data), size)]

    return split


def too_large(exchange: Exchange) -> bool:
    return "head too large" in (exchange.error or "")


# ----------------------------------------------------------------------------- exact bounds


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
@pytest.mark.parametrize("piece", [None, 1460, 8192, 65536, MAX_HEAD + 1])
def test_a_request_head_of_the_limit_passes_and_one_byte_more_does_not(
    newline: bytes, piece: int | None
) -> None:
    for size, refused in ((MAX_HEAD, False), (MAX_HEAD + 1, True)):
        stream = Stream(
            "limit",
            (Step("in", request_head(size, newline) + NEXT_REQUEST),),
            closed=False,
        )
        conn, _ = replay(stream) if piece is None else replay(stream, pieces_of(piece))
        big, after = conn.exchanges
        assert too_large(big) is refused, (size, piece)
        assert big.request.method == "GET"
        assert after.request.path == "/next"
        assert after.error is None


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
@pytest.mark.parametrize("piece", [None, 1460, 8192, MAX_HEAD + 1])
@pytest.mark.parametrize("informational", [0, 2])
def test_a_response_head_of_the_limit_passes_and_one_byte_more_does_not(
    newline: bytes, piece: int | None, informational: int
) -> None:
    """Each head counts on its own: informational responses before it do not add up."""
    for size, refused in ((MAX_HEAD, False), (MAX_HEAD + 1, True)):
        stream = Stream(
            "limit",
            (
                Step("in", NEXT_REQUEST * 2),
                Step("out", CONTINUE * informational + response_head(size, newline) + b"abc"),
                Step("out", NEXT_RESPONSE),
            ),
            closed=False,
        )
        conn, _ = replay(stream) if piece is None else replay(stream, pieces_of(piece))
        first = conn.exchanges[0]
        assert too_large(first) is refused, (size, piece)
        assert len(first.informational) == informational
        if not refused:
            assert first.response is not None
            assert (first.status, first.response.body) == (200, b"abc")
        assert conn.exchanges[1].status == 200


def test_a_head_of_the_limit_passes_a_byte_at_a_time() -> None:
    """The smallest segments: h11 is asked after every byte."""
    for size, refused in ((MAX_HEAD, False), (MAX_HEAD + 1, True)):
        stream = Stream("limit", (Step("in", request_head(size) + NEXT_REQUEST),), closed=False)
        conn, _ = replay(stream, pieces_of(1))
        assert too_large(conn.exchanges[0]) is refused
        assert conn.exchanges[1].request.path == "/next"


# ----------------------------------------------------------------------------- any segmentation


class Case(NamedTuple):
    """A request or response head of ``size`` bytes between ordinary messages, and where each
    direction's bytes are cut (kept small, so that a failing case prints in a few lines)."""

    request: bool
    size: int
    newline: bytes
    lines: int
    informational: int
    closed: bool
    points: tuple[tuple[int, ...], tuple[int, ...]]

    def stream(self) -> Stream:
        if self.request:
            big = request_head(self.size, self.newline, self.lines)
            steps = (Step("in", NEXT_REQUEST + big + NEXT_REQUEST), Step("out", NEXT_RESPONSE * 3))
        else:
            big = response_head(self.size, self.newline, self.lines) + b"abc"
            before = NEXT_RESPONSE + CONTINUE * self.informational
            steps = (Step("in", NEXT_REQUEST * 3), Step("out", before + big + NEXT_RESPONSE))
        return Stream("near the limit", steps, closed=self.closed)

    def split(self, index: int, data: bytes) -> Sequence[bytes]:
        bounds = [0, *[p for p in self.points[index] if 0 < p < len(data)], len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def near_the_limit(draw: st.DrawFn) -> Case:
    """Heads within a few bytes of the limit (or plain ones the fast reader takes), cut mostly
    near the limit, where the verdict is decided."""
    request = draw(st.booleans())
    informational = 0 if request else draw(st.integers(0, 2))
    before = len(NEXT_REQUEST) if request else len(NEXT_RESPONSE) + len(CONTINUE) * informational
    limit = before + MAX_HEAD
    cuts = st.sets(
        st.one_of(st.integers(limit - 16, limit + 16), st.integers(1, 3 * MAX_HEAD)), max_size=12
    ).map(lambda points: tuple(sorted(points)))
    return Case(
        request=request,
        size=draw(
            st.one_of(
                st.integers(MAX_HEAD - 8, MAX_HEAD + 8),
                st.sampled_from([MAX_SIMPLE_HEAD, MAX_HEAD + 8192, 2 * MAX_HEAD]),
            )
        ),
        newline=draw(st.sampled_from([b"\r\n", b"\n"])),
        lines=draw(st.integers(1, 40)),
        informational=informational,
        closed=draw(st.booleans()),
        points=(draw(cuts), draw(cuts)),
    )


@pytest.mark.timeout(300)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_the_limit())
@example(Case(True, MAX_HEAD + 100, b"\r\n", 1, 0, True, ((MAX_HEAD - 10,), ())))
@example(Case(False, MAX_HEAD + 1, b"\n", 3, 1, False, ((), (MAX_HEAD + 60,))))
def test_heads_near_the_limit_decode_the_same_however_they_are_cut(case: Case) -> None:
    stream = case.stream()
    whole, _ = replay(stream)
    cut, _ = replay(stream, case.split)
    assert summary(cut) == summary(whole)
    assert [too_large(exchange) for exchange in whole.exchanges] == [
        False,
        case.size > MAX_HEAD,
        False,
    ]
    # A refused request is still answered; a refused response leaves its request unanswered.
    refused_response = not case.request and case.size > MAX_HEAD
    assert [exchange.status for exchange in whole.exchanges] == [
        200,
        None if refused_response else 200,
        200,
    ]
