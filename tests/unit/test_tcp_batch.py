"""Reassembler.feed_batch: the same stream as feeding one segment at a time, with runs of
in-order segments of one direction delivered as one DataReceived (up to a bound)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.events import AnyEvent, DataReceived
from agent.packet import ACK, PSH, Segment
from agent.tcp import Reassembler
from tests.unit.tcp_traffic import SERVER_PORT, Flow, Transcript

pytestmark = pytest.mark.timeout(30)


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
