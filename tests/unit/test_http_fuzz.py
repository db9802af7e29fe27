"""The decoder on arbitrary input: it never raises, and how the bytes are cut never matters."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.unit.http_streams import Step, Stream, replay, summary

FRAGMENTS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    b"GET /u HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\n",
    b"CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\nConnection: upgrade\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    b"\r\n",
    b"\n",
    b"junk",
    b"\x00\xff",
    b"3\r\nabc\r\n",
    b"Bad header\r\n",
]

fragment = st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=12))


@st.composite
def streams(draw: st.DrawFn) -> tuple[Stream, list[list[int]]]:
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["in", "out", "in", "out", "gap-in", "gap-out"]))
        if kind.startswith("gap"):
            steps.append(Step(kind, length=draw(st.integers(1, 40))))  # type: ignore[arg-type]
        else:
            data = b"".join(draw(st.lists(fragment, min_size=1, max_size=4)))
            steps.append(Step(kind, data))  # type: ignore[arg-type]
    stream = Stream(
        "fuzz",
        tuple(steps),
        mid_stream=draw(st.booleans()),
        closed=draw(st.booleans()),
    )
    points = [
        sorted(draw(st.sets(st.integers(1, max(1, len(step.data) - 1)), max_size=5)))
        for step in steps
    ]
    return stream, points


@pytest.mark.timeout(90)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
@example(  # A response waiting on the client's junk, whose request comes in a later piece.
    (
        Stream(
            "fuzz",
            (
                Step("gap-in", length=1),
                Step("in", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
                Step("in", b"junk"),
                Step("out", b"HTTP/1.1 204 No Content\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
                Step("in", b"HTTP/1.1 100 Continue\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            ),
            closed=False,
        ),
        [[], [], [], [], [25]],
    )
)
@example(  # Junk after a declined upgrade's response, in the same piece or a piece of its own.
    (
        Stream(
            "fuzz",
            (
                Step(
                    "in",
                    b"GET /u HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\n",
                ),
                Step("gap-in", length=1),
                Step("in", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
                Step("out", b"HTTP/1.1 204 No Content\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            ),
            closed=False,
        ),
        [[], [], [], [27]],
    )
)
def test_arbitrary_streams_decode_the_same_however_they_are_cut(
    case: tuple[Stream, list[list[int]]],
) -> None:
    stream, points = case

    def split(index: int, data: bytes) -> Sequence[bytes]:
        bounds = [0, *[p for p in points[index] if p < len(data)], len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]

    whole = summary(replay(stream)[0])
    assert summary(replay(stream, split)[0]) == whole
