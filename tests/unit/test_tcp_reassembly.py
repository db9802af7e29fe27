"""Properties of the reassembler over generated captures: whatever the segmentation, order,
duplication, overlap and loss, each direction reads back as the exact stream, with every byte
that was never captured reported as a gap of exactly its length at its place."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.events import Gap
from agent.packet import ACK, FIN, Segment
from agent.tcp import Limits, Reassembler
from tests.unit.tcp_traffic import MASK, SERVER_PORT, Flow, Transcript, expected_pieces

pytestmark = pytest.mark.timeout(90)

DIRECTIONS = ("in", "out")

# Initial sequence numbers: anywhere, and often just below 2^32 so that streams wrap around.
isns = st.one_of(st.integers(0, MASK), st.integers(MASK - 6000, MASK))


@dataclass(frozen=True)
class Sent:
    """A segment the sender put on the wire: ``stream[start:end]`` of one direction."""

    direction: str
    start: int
    end: int
    captured: bool = True


@dataclass
class Capture:
    flow: Flow
    streams: dict[str, bytes]
    timeline: list[Sent]


def _cuts(draw: st.DrawFn, size: int) -> list[tuple[int, int]]:
    """A segmentation of ``size`` bytes into consecutive non-empty pieces."""
    if size == 0:
        return []
    cuts = draw(st.sets(st.integers(1, size - 1), max_size=40)) if size > 1 else set()
    bounds = [0, *sorted(cuts), size]
    return list(itertools.pairwise(bounds))


@st.composite
def captures(
    draw: st.DrawFn,
    *,
    shuffle: bool,
    duplicate: bool,
    drop: bool,
    max_size: int = 4000,
    client_port: int = 40000,
) -> Capture:
    flow = Flow(client_isn=draw(isns), server_isn=draw(isns), client_port=client_port)
    streams = {d: draw(st.binary(max_size=max_size)) for d in DIRECTIONS}
    sent: dict[str, list[Sent]] = {}
    for direction in DIRECTIONS:
        size = len(streams[direction])
        pieces = _cuts(draw, size)
        dropped = set()
        if drop and pieces:
            dropped = draw(st.sets(st.integers(0, len(pieces) - 1), max_size=len(pieces)))
        sent[direction] = [
            Sent(direction, a, b, captured=i not in dropped) for i, (a, b) in enumerate(pieces)
        ]
        if duplicate and size:
            # Retransmissions that repeat or straddle earlier segments (same bytes, new cuts).
            for start, length in draw(
                st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 1500)), max_size=8)
            ):
                sent[direction].append(Sent(direction, start, min(size, start + length)))
    if shuffle:
        timeline = draw(st.permutations(sent["in"] + sent["out"]))
    else:
        # Keep each direction in order, interleave the two at random.
        turns = draw(st.permutations(["in"] * len(sent["in"]) + ["out"] * len(sent["out"])))
        queues = {d: list(reversed(sent[d])) for d in DIRECTIONS}
        timeline = [queues[d].pop() for d in turns]
    return Capture(flow, streams, list(timeline))


class Replay:
    """Feeds a capture to a reassembler, acknowledging either what the capture holds (a
    receiver that only got what we saw) or what was sent (a receiver that got bytes the
    capture missed, which is when the reassembler must declare them lost)."""

    def __init__(self, reassembler: Reassembler, capture: Capture, acks: str) -> None:
        self.reassembler = reassembler
        self.capture = capture
        self.acks = acks
        self.transcript = Transcript()
        self.seen = {d: bytearray(len(capture.streams[d])) for d in DIRECTIONS}
        self.sent_end = dict.fromkeys(DIRECTIONS, 0)
        self.ts = 1.0

    def acked(self, direction: str) -> int:
        """The peer's stream offset that ``direction``'s receiver-side acknowledges."""
        peer = "out" if direction == "in" else "in"
        if self.acks == "sent":
            return self.sent_end[peer]
        seen = self.seen[peer]
        prefix = seen.find(0)
        return len(seen) if prefix < 0 else prefix

    def feed(self, segment: Segment) -> None:
        self.ts += 0.001
        self.transcript.extend(self.reassembler.feed(segment, self.ts, "veth0"))

    def run_handshake(self) -> None:
        self.feed(self.capture.flow.syn())
        self.feed(self.capture.flow.syn_ack())

    def run_data(self) -> None:
        for sent in self.capture.timeline:
            self.send(sent)

    def send(self, sent: Sent) -> None:
        self.sent_end[sent.direction] = max(self.sent_end[sent.direction], sent.end)
        if not sent.captured:
            return
        self.seen[sent.direction][sent.start : sent.end] = b"\x01" * (sent.end - sent.start)
        data = self.capture.streams[sent.direction][sent.start : sent.end]
        ack = self.acked(sent.direction)
        self.feed(self.capture.flow.segment(sent.direction, sent.start, data, ACK, ack))

    def run_close(self, first: str = "in") -> None:
        flow, streams = self.capture.flow, self.capture.streams
        for direction in (first, "out" if first == "in" else "in"):
            size = len(streams[direction])
            self.sent_end[direction] = size
            self.feed(flow.segment(direction, size, b"", FIN | ACK, self.acked(direction)))


@given(
    capture=captures(shuffle=True, duplicate=True, drop=False),
    fin_first=st.sampled_from(DIRECTIONS),
)
@settings(max_examples=300, deadline=None)
def test_any_segmentation_order_and_duplication_yields_exactly_the_stream(
    capture: Capture, fin_first: str
) -> None:
    replay = Replay(Reassembler(frozenset({SERVER_PORT})), capture, acks="captured")
    replay.run_handshake()
    replay.run_data()
    replay.run_close(fin_first)

    transcript = replay.transcript
    assert [(e.conn, e.mid_stream) for e in transcript.opened()] == [(0, False)]
    assert transcript.stream(0, "in") == capture.streams["in"]
    assert transcript.stream(0, "out") == capture.streams["out"]
    assert [(e.conn, e.reason) for e in transcript.closed()] == [(0, "fin")]
    assert transcript.events[-1] == transcript.closed()[0]
    assert replay.reassembler.open_connections == 0
    assert replay.reassembler.buffered_bytes == 0
    assert all(e.seq == 0 for e in transcript.events)


@given(
    capture=captures(shuffle=False, duplicate=False, drop=True),
    acks=st.sampled_from(["sent", "captured"]),
)
@settings(max_examples=300, deadline=None)
def test_dropped_segments_become_gaps_of_exactly_their_length(capture: Capture, acks: str) -> None:
    replay = Replay(Reassembler(frozenset({SERVER_PORT})), capture, acks=acks)
    replay.run_handshake()
    replay.run_data()
    replay.run_close()

    transcript = replay.transcript
    for direction in DIRECTIONS:
        expected = expected_pieces(capture.streams[direction], replay.seen[direction])
        assert transcript.pieces(0, direction) == expected
    assert {gap.reason for gap in transcript.gaps()} <= {"lost"}
    gaps = transcript.gaps()
    assert replay.reassembler.gaps == len(gaps)
    assert replay.reassembler.gap_bytes == sum(gap.length for gap in gaps)
    assert [e.reason for e in transcript.closed()] == ["fin"]


@given(capture=captures(shuffle=True, duplicate=True, drop=True))
@settings(max_examples=200, deadline=None)
def test_loss_and_reordering_together_still_place_every_byte(capture: Capture) -> None:
    replay = Replay(Reassembler(frozenset({SERVER_PORT})), capture, acks="captured")
    replay.run_handshake()
    replay.run_data()
    replay.run_close()

    for direction in DIRECTIONS:
        expected = expected_pieces(capture.streams[direction], replay.seen[direction])
        assert replay.transcript.pieces(0, direction) == expected


@st.composite
def bounded_runs(draw: st.DrawFn) -> tuple[Limits, list[Capture], list[tuple[int, Sent]]]:
    limits = Limits(
        direction_buffer=draw(st.integers(1, 3000)), total_buffer=draw(st.integers(1, 6000))
    )
    count = draw(st.integers(1, 3))
    runs = [
        draw(
            captures(shuffle=True, duplicate=True, drop=False, max_size=2500, client_port=40000 + i)
        )
        for i in range(count)
    ]
    interleaved = [(i, sent) for i, run in enumerate(runs) for sent in run.timeline]
    order = draw(st.permutations(interleaved))
    # Each connection's own segments keep the order drawn for them; only the mix is shuffled.
    positions = {i: iter(run.timeline) for i, run in enumerate(runs)}
    return limits, runs, [(i, next(positions[i])) for i, _ in order]


@given(run=bounded_runs())
@settings(max_examples=200, deadline=None)
def test_buffer_bounds_are_kept_and_what_they_cost_is_reported(
    run: tuple[Limits, list[Capture], list[tuple[int, Sent]]],
) -> None:
    limits, captures_, order = run
    reassembler = Reassembler(frozenset({SERVER_PORT}), limits)
    replays = [Replay(reassembler, capture, acks="captured") for capture in captures_]
    transcript = Transcript()
    for replay in replays:
        replay.transcript = transcript
        replay.run_handshake()
    for index, sent in order:
        replays[index].send(sent)
        assert reassembler.buffered_bytes <= limits.total_buffer
    for replay in replays:
        replay.run_close()

    # Connection ids follow the order of the handshakes above.
    for conn, capture in enumerate(captures_):
        for direction in DIRECTIONS:
            stream = capture.streams[direction]
            offset = 0
            for kind, value in transcript.pieces(conn, direction):
                if isinstance(value, bytes):
                    assert value == stream[offset : offset + len(value)]
                    offset += len(value)
                else:
                    assert kind == "gap"
                    offset += value
            assert offset == len(stream)
    gaps = [e for e in transcript.events if isinstance(e, Gap)]
    assert {gap.reason for gap in gaps} <= {"buffer-limit", "memory-limit"}
    assert reassembler.gap_bytes == sum(gap.length for gap in gaps)
    assert reassembler.buffered_bytes == 0
    assert [e.reason for e in transcript.closed()] == ["fin"] * len(captures_)
