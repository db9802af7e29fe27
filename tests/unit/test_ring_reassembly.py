"""agent.ring_reassembly.RingReassembler.feed_block repeats two loops in one: what
agent.capture.frames_of_block reads of a ring block, fed to Reassembler.feed_frames. It must
give exactly what they give, block by block: the same events (runs joined alike), the same
counters, and the same frames refused or cut short, on drawn TCP traffic (tests.unit.
test_tcp_reference) carried in ring blocks as the kernel lays them out, mixed with frames the
fast path does not read (IPv4 options, IPv6, TCP options, truncated, loopback echoes, junk)."""

from __future__ import annotations

import itertools
import struct
import time
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agent.tcp
from agent.capture import PACKET_OUTGOING, frames_of_block
from agent.events import AnyEvent, DataReceived, Stats
from agent.journal import Journal
from agent.packet import ACK, PSH, Frame, frame_of, segment_of
from agent.ring_reassembly import RingReassembler
from agent.sniffer import BlockParser, Sniffer
from agent.tcp import Reassembler
from tests.unit.tcp_traffic import SERVER_PORT, Flow
from tests.unit.test_capture_parse import LOOPBACK, NAMES, VETH, RingFrame, ring_block
from tests.unit.test_tcp_reference import Traffic, frames_of, traffic

pytestmark = pytest.mark.timeout(120)

IPV4 = struct.Struct("!BBHHHBBH4s4s")
TCP = struct.Struct("!HHIIBBHHH")
IPV6 = struct.Struct("!IHBB16s16s")

# How a frame goes on the ring: as the fast path reads it, or in a form it leaves to parse_ip.
WIRE_FORMS = ("plain", "plain", "plain", "ip-options", "tcp-options", "ipv6")


def wire_bytes(frame: Frame, form: str) -> bytes:
    """The IP packet that carries ``frame`` in ``form``."""
    _, _, key, seq, ack, flags, payload = frame
    segment = segment_of(key, seq, ack, flags, payload)
    tcp_options = bytes(8) if form == "tcp-options" else b""
    tcp = TCP.pack(
        segment.sport, segment.dport, seq, ack, (5 + len(tcp_options) // 4) << 4, flags, 0, 0, 0
    ) + tcp_options + payload  # fmt: skip
    if form == "ipv6":
        mapped = bytes(10) + b"\xff\xff"
        return IPV6.pack(6 << 28, len(tcp), 6, 64, mapped + segment.src, mapped + segment.dst) + tcp
    ip_options = bytes(4) if form == "ip-options" else b""
    words = 5 + len(ip_options) // 4
    total = words * 4 + len(tcp)
    header = IPV4.pack(0x40 | words, 0, total, 1, 0x4000, 64, 6, 0, segment.src, segment.dst)
    return header + ip_options + tcp


@st.composite
def ring_traffic(draw: st.DrawFn) -> list[list[RingFrame]]:
    """Drawn traffic as ring frames, cut into blocks anywhere."""
    drawn: Traffic = draw(traffic())
    frames: list[RingFrame] = []
    for frame in frames_of(drawn):
        data = wire_bytes(frame, draw(st.sampled_from(WIRE_FORMS)))
        seconds, nanos = int(frame[0]), draw(st.integers(0, 999_999_999))
        cut = draw(st.sampled_from([0] * 12 + [1, 100]))  # the ring kept part of it only
        frames.append((data, len(data) + cut, VETH, 0, seconds, nanos))
        if draw(st.integers(0, 9)) == 0:  # loopback's outgoing echo, or something else
            echo = draw(
                st.sampled_from([(data, LOOPBACK, PACKET_OUTGOING), (b"\x45junk", VETH, 0)])
            )
            frames.append((echo[0], len(echo[0]), echo[1], echo[2], seconds, nanos))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(frames) - 1)), max_size=6)))
    bounds = [0, *[c for c in cuts if c < len(frames)], len(frames)]
    return [frames[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def both_ways(blocks: list[list[RingFrame]]) -> tuple[Reassembler, RingReassembler, list[str]]:
    """Both reassemblers fed the same blocks, and how their answers differed, block by block."""
    split, fused = Reassembler(frozenset({SERVER_PORT})), RingReassembler(frozenset({SERVER_PORT}))
    loopbacks = frozenset({LOOPBACK})
    segments = 0
    differences = []
    for index, frames in enumerate(blocks):
        block = ring_block(frames)
        read: list[Frame] = []
        cut_short = frames_of_block(block, 0, len(frames), NAMES.__getitem__, loopbacks, read)
        expected = split.feed_frames(read)
        segments += len(read)
        got: list[AnyEvent] = []
        fused_cut_short = fused.feed_block(block, 0, len(frames), NAMES.__getitem__, loopbacks, got)
        if (got, fused_cut_short, fused.segments) != (expected, cut_short, segments):
            differences.append(f"block {index}: {got!r}, {fused_cut_short}, {fused.segments}")
    return split, fused, differences


@settings(max_examples=200, deadline=None)
@given(ring_traffic(), st.sampled_from([64 * 1024, 1, 300]))
def test_a_block_reassembles_as_frames_of_block_then_feed_frames(
    blocks: list[list[RingFrame]], join: int
) -> None:
    with mock.patch.object(agent.tcp, "_JOIN_UP_TO", join):
        split, fused, differences = both_ways(blocks)
    assert differences == []
    assert fused.close_all(1000.0) == split.close_all(1000.0)
    assert (fused.payload_bytes, fused.gaps, fused.gap_bytes, fused.open_connections) == (
        split.payload_bytes,
        split.gaps,
        split.gap_bytes,
        split.open_connections,
    )


class RingBlocks:
    """A capture that hands out prepared ring blocks, then nothing (agent.sniffer.BlockSource)."""

    def __init__(self, blocks: list[list[RingFrame]]) -> None:
        self._blocks = [(ring_block(frames), len(frames)) for frames in blocks]

    def read_blocks(self, timeout: float, parse: BlockParser) -> list[AnyEvent]:
        out: list[AnyEvent] = []
        if not self._blocks:
            time.sleep(min(timeout, 0.01))
        for block, count in self._blocks:
            parse(block, 0, count, NAMES.__getitem__, frozenset({LOOPBACK}), out)
        self._blocks = []
        return out

    def read_frames(self, timeout: float) -> list[Frame]:
        raise AssertionError("the sniffer reads blocks when the reassembler can")

    def kernel_counters(self) -> tuple[int, int]:
        return 0, 0

    def waiting(self) -> int:
        return 0


def test_the_sniffer_feeds_ring_blocks_straight_to_a_ring_reassembler() -> None:
    flow = Flow()
    request, response = b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"
    segments = [
        flow.syn(),
        flow.syn_ack(),
        flow.segment("in", 0, request, PSH | ACK, 0),
        flow.segment("out", 0, response, PSH | ACK, len(request)),
    ]
    packets = [wire_bytes(frame_of(1.0, "", segment), "plain") for segment in segments]
    ring_frames: list[RingFrame] = [(data, len(data), VETH, 0, 1, 0) for data in packets]
    journal = Journal()
    sniffer = Sniffer(RingBlocks([ring_frames]), RingReassembler(frozenset({SERVER_PORT})), journal)
    sniffer.start()
    sniffer.stop()
    events = journal.read(0)
    data = [e.data for e in events if isinstance(e, DataReceived)]
    assert data == [request, response]
    assert [e.packets for e in events if isinstance(e, Stats)] == [4]
