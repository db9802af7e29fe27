"""feed_frames against a reference model of TCP reassembly.

The model follows each direction byte by byte (a flag per byte: captured or not) and knows
nothing of the reassembler's runs, chunks or fast path. Traffic is drawn as a wire would carry
it (several connections, segments lost by the capture, retransmissions that overlap what came
before, acknowledgements that run ahead of what the capture saw, sequence numbers that wrap,
connections joined mid-stream), then captured out of order and fed in batches cut anywhere.
Each direction must read back as the model reads it: the same bytes at the same places, and a
gap of exactly the same length wherever a byte is missing. Bytes tell their own place, so a byte
delivered twice, dropped without a gap or put in the wrong place cannot pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from random import Random
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agent.tcp
from agent.events import AnyEvent, ConnectionOpened
from agent.packet import ACK, FIN, PSH, Frame, frame_of
from agent.tcp import Reassembler
from tests.unit.tcp_traffic import MASK, SERVER_PORT, Flow, Piece, Transcript

pytestmark = pytest.mark.timeout(120)

DIRECTIONS = ("in", "out")
isns = st.one_of(st.integers(0, MASK), st.integers(MASK - 3000, MASK))


def peer_of(direction: str) -> str:
    return "out" if direction == "in" else "in"


def numbered(size: int, conn: int, direction: str) -> bytes:
    """Bytes that tell their place: no two windows of a stream read alike."""
    words = (f"{conn}{direction[0]}{place:05d}|".encode() for place in range(0, size, 8))
    return b"".join(words)[:size]


@dataclass(frozen=True)
class Wired:
    """One segment on the wire: ``stream[start:end]`` of a direction, the peer's offset it
    acknowledges (None: the peer has sent nothing yet), and whether the capture got it."""

    conn: int
    direction: str
    start: int
    end: int
    ack: int | None
    fin: bool = False
    captured: bool = True


@dataclass
class Connection:
    flow: Flow
    streams: dict[str, bytes]
    handshake: bool
    wire: list[Wired]


@st.composite
def connections(draw: st.DrawFn, conn: int) -> Connection:
    flow = Flow(client_isn=draw(isns), server_isn=draw(isns), client_port=40000 + conn)
    streams = {d: numbered(draw(st.integers(0, 1500)), conn, d) for d in DIRECTIONS}
    # Per direction, what the sender puts on the wire, in order: its segments, some lost by
    # the capture, and retransmissions of any range already sent, anywhere after it.
    queues: dict[str, list[tuple[int, int, bool]]] = {}
    for direction in DIRECTIONS:
        size = len(streams[direction])
        cuts = sorted(draw(st.sets(st.integers(1, max(1, size - 1)), max_size=30))) if size else []
        bounds = [0, *[c for c in cuts if 0 < c < size], size] if size else []
        sent = [(a, b, draw(st.integers(0, 5)) > 0) for a, b in itertools.pairwise(bounds)]
        for _ in range(draw(st.integers(0, 5)) if sent else 0):
            at = draw(st.integers(1, len(sent)))
            high = max(b for _, b, _ in sent[:at])
            start = draw(st.integers(0, high - 1))
            end = draw(st.integers(start + 1, min(size, start + 600)))
            sent.insert(at, (start, end, draw(st.integers(0, 5)) > 0))
        queues[direction] = sent
    # Both directions interleaved; each segment acknowledges some of what the peer sent so
    # far (never more), and acknowledgements never go back on the wire.
    turns = draw(st.permutations(["in"] * len(queues["in"]) + ["out"] * len(queues["out"])))
    sent_end = dict.fromkeys(DIRECTIONS, 0)
    acked = dict.fromkeys(DIRECTIONS, 0)
    wire: list[Wired] = []
    for direction in turns:
        start, end, captured = queues[direction].pop(0)
        sent_end[direction] = max(sent_end[direction], end)
        peer = peer_of(direction)
        acked[peer] = draw(
            st.sampled_from([acked[peer], sent_end[peer]])
            | st.integers(acked[peer], sent_end[peer])
        )
        wire.append(Wired(conn, direction, start, end, acked[peer], captured=captured))
        if draw(st.integers(0, 3)) == 0:
            # A bare acknowledgement from the receiver (a capture without the filter has them).
            acked[direction] = draw(st.integers(acked[direction], sent_end[direction]))
            at = sent_end[peer]
            bare = Wired(conn, peer, at, at, acked[direction], captured=draw(st.booleans()))
            wire.append(bare)
    first = draw(st.sampled_from(DIRECTIONS))
    second = peer_of(first)
    for direction, peer_end in ((first, len(streams[second])), (second, len(streams[first]) + 1)):
        size = len(streams[direction])
        # The FIN alone, or with the stream's last bytes again (as a sender that shuts down
        # right after writing sends them), which the capture may see before the first copy.
        # The second FIN acknowledges the first one, which takes the sequence number after
        # the first stream's bytes: captured out of order, the acknowledgement may come first.
        start = size - draw(st.integers(0, min(size, 300)))
        wire.append(Wired(conn, direction, start, size, peer_end, True))
    # The first closer's last ACK, of the second FIN (it may also be seen before that FIN).
    after_fin = len(streams[first]) + 1
    last_ack = len(streams[second]) + 1
    wire.append(Wired(conn, first, after_fin, after_fin, last_ack, captured=draw(st.booleans())))
    return Connection(flow, streams, draw(st.booleans()), wire)


@dataclass
class Traffic:
    connections: list[Connection]
    captured: list[Wired]
    """What the capture saw, in the order it saw it (handshakes left out)."""


@st.composite
def traffic(draw: st.DrawFn) -> Traffic:
    conns = [draw(connections(i)) for i in range(draw(st.integers(1, 3)))]
    random = Random(draw(st.integers(0, 2**32)))
    orders: list[list[Wired]] = []
    for conn in conns:
        seen = [w for w in conn.wire if w.captured]
        if draw(st.booleans()):
            random.shuffle(seen)
        else:
            # Reordered a little, as when frames of one flow are handled on two CPUs.
            keyed = [(i + random.randint(0, 4), i, w) for i, w in enumerate(seen)]
            seen = [w for _, _, w in sorted(keyed)]
        orders.append(seen)
    captured: list[Wired] = []
    while any(orders):
        captured.append(random.choice([o for o in orders if o]).pop(0))
    return Traffic(conns, captured)


# -- the model -------------------------------------------------------------------------------


@dataclass
class ModelDirection:
    stream: bytes
    have: bytearray = field(init=False)
    origin: int | None = None  # stream offset of the first byte accounted for
    pos: int = 0  # absolute offset up to which the stream is accounted for
    fin: int | None = None
    held: int | None = None  # an acknowledged offset that may be the FIN, not yet seen
    pieces: list[Piece] = field(default_factory=list)

    def __post_init__(self) -> None:
        # One more place than the stream has bytes: the FIN's number, acknowledged but never
        # a byte the capture can see.
        self.have = bytearray(len(self.stream) + 1)

    def emit(self, kind: str, value: bytes | int) -> None:
        if self.pieces and self.pieces[-1][0] == kind:
            previous = self.pieces[-1][1]
            self.pieces[-1] = (kind, previous + value)  # type: ignore[operator]
        else:
            self.pieces.append((kind, value))

    def deliver_ready(self) -> None:
        start = self.pos
        while self.pos < len(self.stream) and self.have[self.pos]:
            self.pos += 1
        if self.pos > start:
            self.emit("data", self.stream[start : self.pos])

    def skip_to(self, target: int) -> None:
        """Everything below ``target`` is accounted for: what was captured is delivered, the
        rest is lost."""
        while self.pos < target:
            if self.have[self.pos]:
                self.deliver_ready()
                continue
            hole = self.pos
            while self.pos < target and not self.have[self.pos]:
                self.pos += 1
            self.emit("gap", self.pos - hole)
        self.deliver_ready()

    def acknowledged(self, ack: int) -> None:
        """The receiver has every offset below ``ack``. One past the bytes seen, with nothing
        seen beyond, that last offset may be the FIN, which is no byte: it is held."""
        if self.fin is not None:
            self.skip_to(min(ack, self.fin))
        elif ack == self.pos + 1 and not any(self.have[self.pos :]):
            self.held = self.pos
        else:
            self.skip_to(ack)

    def settle_held(self) -> None:
        """A held offset is a lost byte once anything of the stream is seen beyond it."""
        if self.held != self.pos:
            return
        beyond = any(self.have[self.pos + 1 :])
        if beyond or (self.fin is not None and self.fin > self.pos):
            self.skip_to(self.pos + 1)

    def end(self) -> None:
        """The connection ended: what is missing up to the last byte or FIN known is lost, and
        so is a held offset that no FIN came to."""
        target = max(self.buffer_end(), self.fin or 0)
        if self.held == self.pos and self.fin is None:
            target = max(target, self.pos + 1)
        self.skip_to(target)

    def buffer_end(self) -> int:
        end = self.pos
        for offset in range(self.pos, len(self.stream)):
            if self.have[offset]:
                end = offset + 1
        return end


class Model:
    """What each direction of each connection should read as, byte by byte."""

    def __init__(self, connections: list[Connection]) -> None:
        self.directions = {
            (i, d): ModelDirection(c.streams[d])
            for i, c in enumerate(connections)
            for d in DIRECTIONS
        }
        self.opened: list[int] = []
        self.closed: set[int] = set()
        for index, conn in enumerate(connections):
            if conn.handshake:
                self.open(index)
                for direction in DIRECTIONS:
                    self.directions[index, direction].origin = 0

    def open(self, conn: int) -> None:
        self.opened.append(conn)

    def see(self, seg: Wired) -> None:
        conn, direction = seg.conn, seg.direction
        if conn in self.closed:
            return
        if conn not in self.opened:
            if seg.end == seg.start:
                return  # a segment without payload never opens a connection
            self.open(conn)
        half, peer = self.directions[conn, direction], self.directions[conn, peer_of(direction)]
        if seg.ack is not None and peer.origin is not None:
            peer.acknowledged(seg.ack)
        if half.origin is None and (seg.fin or seg.end > seg.start):
            half.origin = half.pos = seg.start
        if seg.fin and half.fin is None:
            half.fin = max(seg.end, half.pos)
        if half.origin is None:
            return  # a bare acknowledgement says nothing of where its own direction stands
        limit = half.fin if half.fin is not None else len(half.stream)
        for offset in range(max(seg.start, half.pos), min(seg.end, limit)):
            half.have[offset] = 1
        half.deliver_ready()
        half.settle_held()
        if half.fin is not None and peer.fin is not None:
            self.close(conn)

    def close(self, conn: int) -> None:
        for direction in DIRECTIONS:
            half = self.directions[conn, direction]
            if half.origin is not None:
                half.end()
        self.closed.add(conn)

    def close_all(self) -> None:
        for conn in self.opened:
            if conn not in self.closed:
                self.close(conn)


# -- feeding the reassembler -----------------------------------------------------------------


def frames_of(traffic: Traffic) -> list[Frame]:
    frames: list[Frame] = []
    ts = 100.0
    handshaken = set()
    for seg in traffic.captured:
        conn = traffic.connections[seg.conn]
        if conn.handshake and seg.conn not in handshaken:
            handshaken.add(seg.conn)
            for segment in (conn.flow.syn(), conn.flow.syn_ack()):
                ts += 0.001
                frames.append(frame_of(ts, "veth0", segment))
        data = conn.streams[seg.direction][seg.start : seg.end]
        flags = (FIN | ACK) if seg.fin else (PSH | ACK) if data else ACK
        segment = conn.flow.segment(seg.direction, seg.start, data, flags, seg.ack)
        ts += 0.001
        frames.append(frame_of(ts, "veth0", segment))
    return frames


@contextmanager
def runs_joined_up_to(size: int) -> Iterator[None]:
    with mock.patch.object(agent.tcp, "_JOIN_UP_TO", size):
        yield


def fed_in_batches(
    frames: list[Frame], cuts: list[int], join: int
) -> tuple[Transcript, Reassembler]:
    reassembler = Reassembler(frozenset({SERVER_PORT}))
    transcript = Transcript()
    start = 0
    with runs_joined_up_to(join):
        for size in [*cuts, len(frames)]:
            transcript.extend(reassembler.feed_frames(frames[start : start + size]))
            start += size
        transcript.extend(reassembler.close_all(1000.0))
    return transcript, reassembler


def conn_ids(events: list[AnyEvent]) -> dict[int, int]:
    """Connection id given by the reassembler -> index of the drawn connection."""
    return {e.conn: e.client_port - 40000 for e in events if isinstance(e, ConnectionOpened)}


@settings(max_examples=300, deadline=None)
@given(
    traffic(),
    st.lists(st.integers(1, 30), max_size=12),
    st.sampled_from([64 * 1024, 1, 5, 300]),
)
def test_every_direction_reads_as_the_model_reads_it(
    traffic: Traffic, cuts: list[int], join: int
) -> None:
    model = Model(traffic.connections)
    for seg in traffic.captured:
        model.see(seg)
    model.close_all()

    frames = frames_of(traffic)
    transcript, reassembler = fed_in_batches(frames, cuts, join)

    ids = conn_ids(transcript.events)
    assert sorted(ids.values()) == sorted(set(model.opened))
    for conn, index in ids.items():
        for direction in DIRECTIONS:
            assert (
                transcript.pieces(conn, direction) == model.directions[index, direction].pieces
            ), (
                index,
                direction,
            )
    assert reassembler.gap_bytes == sum(
        value
        for half in model.directions.values()
        for kind, value in half.pieces
        if kind == "gap" and isinstance(value, int)
    )
    assert reassembler.open_connections == 0
    assert reassembler.buffered_bytes == 0
    # Every payload fed is counted once, whichever path took it (Stats.bytes).
    assert reassembler.payload_bytes == sum(len(frame[6]) for frame in frames)
