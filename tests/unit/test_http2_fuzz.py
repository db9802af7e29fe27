"""The HTTP/2 decoder on cut and corrupted input: how bytes are cut never matters, and no input
makes it raise or grow without bound."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.h2_streams import NAMES, Direction, new_connection, recording, replay, summary
from tests.unit.http_streams import Collected
from tui.model.http import ConnectionDecoder
from tui.model.http2 import Http2Decoder

pytestmark = pytest.mark.timeout(120)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cut_points(draw: st.DrawFn, name: str) -> list[list[int]]:
    """For each chunk of the recording, where to cut it."""
    cuts = []
    for _, data in recording(name):
        size = len(data)
        points = draw(st.lists(st.integers(0, size), max_size=6)) if size else []
        cuts.append(sorted(set(points)))
    return cuts


def _pieces(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(data=st.data())
def test_any_segmentation_gives_the_same_exchanges(name: str, data: st.DataObject) -> None:
    cuts = data.draw(cut_points(name))
    whole, _, _ = replay(recording(name))
    cut, _, _ = replay(recording(name), split=lambda index, chunk: _pieces(chunk, cuts[index]))
    assert summary(cut) == summary(whole)


def _through_connection_decoder(name: str, cuts: list[list[int]] | None) -> dict[str, object]:
    """The recording fed to the store's ConnectionDecoder: detection, then the hand-off."""
    conn = new_connection()
    conn.mid_stream = name == "grpc-joined-late"
    decoder = ConnectionDecoder(conn)
    sink = Collected()
    for index, (direction, data) in enumerate(recording(name)):
        for piece in [data] if cuts is None else _pieces(data, cuts[index]):
            decoder.feed(direction, piece, 1.0 + index, sink)
    decoder.close(99.0, sink)
    return summary(conn)


@pytest.mark.parametrize("name", [*NAMES, "curl-h2c-upgrade", "grpc-joined-late"])
@FAST
@given(data=st.data())
def test_the_hand_off_from_detection_is_as_cut_proof(name: str, data: st.DataObject) -> None:
    cuts = data.draw(cut_points(name))
    assert _through_connection_decoder(name, cuts) == _through_connection_decoder(name, None)


@pytest.mark.parametrize("name", NAMES)
def test_byte_by_byte_gives_the_same_exchanges(name: str) -> None:
    whole, _, _ = replay(recording(name))
    split, _, _ = replay(
        recording(name), split=lambda _i, chunk: [chunk[i : i + 1] for i in range(len(chunk))]
    )
    assert summary(split) == summary(whole)


@st.composite
def corrupted(draw: st.DrawFn) -> list[tuple[Direction, bytes]]:
    chunks = list(recording(draw(st.sampled_from(NAMES))))
    for _ in range(draw(st.integers(1, 8))):
        index = draw(st.integers(0, len(chunks) - 1))
        direction, chunk = chunks[index]
        at = draw(st.integers(0, len(chunk)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and at < len(chunk):
            chunk = chunk[:at] + bytes([chunk[at] ^ draw(st.integers(1, 255))]) + chunk[at + 1 :]
        elif action == "insert":
            chunk = chunk[:at] + draw(st.binary(min_size=1, max_size=20)) + chunk[at:]
        elif action == "delete":
            chunk = chunk[:at] + chunk[at + draw(st.integers(1, 20)) :]
        else:
            chunk = chunk[:at]
        chunks[index] = (direction, chunk)
    return chunks


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=corrupted(), joined_late=st.booleans())
def test_corrupted_frames_never_raise(
    chunks: list[tuple[Direction, bytes]], joined_late: bool
) -> None:
    conn, _, _ = replay(chunks, joined_late=joined_late)
    total = sum(len(data) for _, data in chunks)
    assert len(conn.exchanges) <= total // 9
    assert len(conn.errors) <= 20


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["in", "out", "gap-in", "gap-out"]), st.binary(max_size=64)),
        max_size=30,
    ),
    joined_late=st.booleans(),
)
def test_random_bytes_and_gaps_never_raise(
    steps: list[tuple[str, bytes]], joined_late: bool
) -> None:
    _conn, decoder, sink = replay([], joined_late=joined_late, close=False)
    for kind, data in steps:
        if kind.startswith("gap"):
            decoder.gap("in" if kind == "gap-in" else "out", len(data) + 1, 1.0, sink)
        else:
            decoder.feed("in" if kind == "in" else "out", data, 1.0, sink)
    decoder.close(2.0, sink)


def test_a_huge_frame_is_passed_over_without_being_kept() -> None:
    conn, decoder, sink = replay(recording("curl-prior-knowledge")[:1], close=False)
    # A HEADERS frame announcing 10 MB on stream 3, fed in 1 MB pieces: never buffered whole.
    decoder.feed("in", (10 << 20).to_bytes(3, "big") + b"\x01\x04\x00\x00\x00\x03", 2.0, sink)
    for _ in range(10):
        decoder.feed("in", bytes(1 << 20), 2.0, sink)
        assert len(decoder._in.reader._buf) <= 1 << 20
    assert any("past the cap" in error for error in conn.errors)
    assert isinstance(decoder, Http2Decoder)
