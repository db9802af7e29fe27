"""Reassembler.feed_batch: the same stream as feeding one segment at a time, with runs of
in-order segments of one direction delivered as one DataReceived (up to a bound)."""

from __future__ import annotations

from dataclasses import replace
from random import Random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.events import AnyEvent, DataReceived
from agent.packet import ACK, PSH, Segment, frame_of
from agent.tcp import Reassembler
from tests.unit.tcp_traffic import SERVER_PORT, Flow, Transcript
from tests.unit.test_tcp_reassembly import Capture, Replay, Sent, captures

pytestmark = pytest.mark.timeout(120)


def batch(*segments: Segment) -> list[tuple[float, str, Segment]]:
    return [(100.0 + index * 0.001, "eth0", segment) for index, segment in enumerate(segments)]


def data_events(events: list[AnyEvent]) -> list[DataReceived]:
    return [event for event in events if isinstance(event, DataReceived)]


def test_a_run_of_one_direction_is_one_event_stamped_at_its_first_segment() -> None:
    flow = Flow()
    reassembler = Reassembler(frozenset({SERVER_PORT}))
    reassembler.feed_batch(batch(flow.syn(), flow.syn_ack()))
    chunks = [b"a" * 1000, b"b" * 1000, b"c" * 500]
    offsets = [0, 1000, 2000]
    events = reassembler.feed_batch(
        batch(
            *(
                flow.segment("out", at, chunk, PSH | ACK)
                for at, chunk in zip(offsets, chunks, strict=True)
            )
        )
    )
    [data] = data_events(events)
    assert data.data == b"".join(chunks)
    assert (data.direction, data.ts) == ("out", 100.0)


def test_other_events_and_directions_break_a_run() -> None:
    first, second = Flow(), Flow(client_port=40001, client_isn=7000)
    reassembler = Reassembler(frozenset({SERVER_PORT}))
    reassembler.feed_batch(batch(first.syn(), first.syn_ack(), second.syn(), second.syn_ack()))
    events = reassembler.feed_batch(
        batch(
            first.segment("in", 0, b"GET", PSH | ACK),
            second.segment("in", 0, b"PUT", PSH | ACK),
            first.segment("in", 3, b" /", PSH | ACK),
            first.segment("out", 0, b"HTTP", PSH | ACK, 5),
            first.segment("out", 4, b"/1.1", PSH | ACK, 5),
        )
    )
    assert [(e.conn, e.direction, e.data) for e in data_events(events)] == [
        (0, "in", b"GET"),
        (1, "in", b"PUT"),
        (0, "in", b" /"),
        (0, "out", b"HTTP/1.1"),
    ]


def test_a_run_stops_growing_at_the_bound() -> None:
    flow = Flow()
    reassembler = Reassembler(frozenset({SERVER_PORT}))
    reassembler.feed_batch(batch(flow.syn(), flow.syn_ack()))
    size = 16 * 1024
    events = reassembler.feed_batch(
        batch(*(flow.segment("out", i * size, bytes(size), ACK) for i in range(10)))
    )
    assert [len(e.data) for e in data_events(events)] == [64 * 1024, 64 * 1024, 32 * 1024]


@given(st.lists(st.tuples(st.sampled_from(["in", "out"]), st.binary(min_size=1, max_size=40))))
def test_batched_and_single_feeding_give_the_same_streams(
    pieces: list[tuple[str, bytes]],
) -> None:
    flow = Flow()
    offsets = {"in": 0, "out": 0}
    segments = [flow.syn(), flow.syn_ack()]
    for direction, data in pieces:
        segments.append(flow.segment(direction, offsets[direction], data, PSH | ACK))
        offsets[direction] += len(data)
    one_by_one, batched = Transcript(), Transcript()
    single = Reassembler(frozenset({SERVER_PORT}))
    for ts, interface, segment in batch(*segments):
        one_by_one.extend(single.feed(segment, ts, interface))
    batched.extend(Reassembler(frozenset({SERVER_PORT})).feed_batch(batch(*segments)))
    for direction in ("in", "out"):
        assert batched.stream(0, direction) == one_by_one.stream(0, direction)
    assert len(batched.events) <= len(one_by_one.events)


class Recording(Replay):
    """A Replay that keeps the segments it would feed, with their times, instead."""

    def __init__(self, capture: Capture) -> None:
        super().__init__(Reassembler(frozenset({SERVER_PORT})), capture, acks="captured")
        self.fed: list[tuple[float, str, Segment]] = []

    def feed(self, segment: Segment) -> None:
        self.ts += 0.001
        self.fed.append((self.ts, "veth0", segment))


def joined_runs(events: list[AnyEvent]) -> list[AnyEvent]:
    """The events with each run of DataReceived of one direction joined into one, as the
    batch path joins them: otherwise the very same events, in the very same order."""
    joined: list[AnyEvent] = []
    for event in events:
        last = joined[-1] if joined else None
        if (
            isinstance(event, DataReceived)
            and isinstance(last, DataReceived)
            and (last.conn, last.direction) == (event.conn, event.direction)
        ):
            joined[-1] = msgspec.structs.replace(last, data=last.data + event.data)
        else:
            joined.append(event)
    return joined


@st.composite
def resending(draw: st.DrawFn) -> Capture:
    """Each direction in order, some segments lost, and segments sent again (straddling what
    came before and what comes next) anywhere in between."""
    capture = draw(captures(shuffle=False, duplicate=False, drop=draw(st.booleans()), max_size=600))
    timeline = list(capture.timeline)
    for _ in range(draw(st.integers(0, 6))):
        direction = draw(st.sampled_from(["in", "out"]))
        size = len(capture.streams[direction])
        if size:
            start = draw(st.integers(0, size - 1))
            end = draw(st.integers(start + 1, size))
            timeline.insert(draw(st.integers(0, len(timeline))), Sent(direction, start, end))
    return replace(capture, timeline=timeline)


def numbered(size: int, conn: int, direction: str) -> bytes:
    words = (f"{conn}{direction}{place:06d}|".encode() for place in range(0, size, 10))
    return b"".join(words)[:size]


def recorded(capture: Capture) -> list[tuple[float, str, Segment]]:
    recording = Recording(capture)
    recording.run_handshake()
    recording.run_data()
    recording.run_close()
    return recording.fed


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(resending(), captures(shuffle=True, duplicate=True, drop=True, max_size=600)),
        min_size=1,
        max_size=3,
    ),
    st.randoms(use_true_random=False),
    st.lists(st.integers(1, 40), max_size=20),
)
def test_frames_fed_in_batches_read_as_frames_fed_one_by_one(
    flows: list[Capture], random: Random, cuts: list[int]
) -> None:
    """Several connections interleaved (each lossy, reordered, duplicated), fed through the
    batch path in batches of any size: every direction reads back exactly as when each frame
    is fed alone, with the same connections opened and closed."""
    timelines = [
        recorded(
            replace(
                capture,
                flow=replace(capture.flow, client_port=40000 + index),
                # Bytes that tell their place, so that misplaced data cannot read the same.
                streams={d: numbered(len(data), index, d) for d, data in capture.streams.items()},
            )
        )
        for index, capture in enumerate(flows)
    ]
    interleaved: list[tuple[float, str, Segment]] = []
    while any(timelines):
        interleaved.append(random.choice([t for t in timelines if t]).pop(0))
    frames = [frame_of(ts, interface, segment) for ts, interface, segment in interleaved]

    alone = Reassembler(frozenset({SERVER_PORT}))
    one_by_one = Transcript()
    for frame in frames:
        one_by_one.extend(alone.feed_frames([frame]))
    batched_reassembler = Reassembler(frozenset({SERVER_PORT}))
    batched = Transcript()
    start = 0
    for size in [*cuts, len(frames)]:
        batched.extend(batched_reassembler.feed_frames(frames[start : start + size]))
        start += size

    assert joined_runs(batched.events) == joined_runs(one_by_one.events)
    assert [(e.conn, e.client_port) for e in batched.opened()] == [
        (e.conn, e.client_port) for e in one_by_one.opened()
    ]
    assert (batched_reassembler.gaps, batched_reassembler.gap_bytes) == (
        alone.gaps,
        alone.gap_bytes,
    )
    assert len(batched.events) <= len(one_by_one.events)
