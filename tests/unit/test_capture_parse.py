"""agent.capture.frames_of_block, the ring's hot loop, must say exactly what agent.packet.parse_ip
says, frame for frame, including every refusal, for whole TPACKET_V3 blocks."""

from __future__ import annotations

import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.capture import PACKET_OUTGOING, frames_of_block
from agent.packet import Frame, flow_key, frame_of, parse_ip, segment_of

pytestmark = pytest.mark.timeout(60)

IPV4_TCP = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
# struct tpacket3_hdr (48 bytes: next offset, seconds, nanoseconds, captured length, wire
# length, status, mac and network offsets, then fields the reader skips) and struct
# sockaddr_ll (family, protocol, interface index, hardware type, packet type, address).
TPACKET3_HDR = struct.Struct("=IIIIIIHH20x")
SOCKADDR_LL = struct.Struct("=HHiHBB8x")
NETWORK_OFFSET = 96  # where a cooked socket's frames put the IP header
LOOPBACK, VETH = 1, 2
NAMES = {LOOPBACK: "lo", VETH: "veth0"}

# (captured bytes, wire length, interface index, packet type, seconds, nanoseconds)
RingFrame = tuple[bytes, int, int, int, int, int]


def ring_block(frames: list[RingFrame]) -> bytes:
    """The frames of one ring block as the kernel lays them out, each 16-byte aligned."""
    block = bytearray()
    for index, (data, wire_length, ifindex, pkttype, seconds, nanos) in enumerate(frames):
        size = NETWORK_OFFSET + len(data)
        following = (size + 15) & ~15 if index < len(frames) - 1 else 0
        header = TPACKET3_HDR.pack(
            following, seconds, nanos, len(data), wire_length, 1, NETWORK_OFFSET, NETWORK_OFFSET
        )
        header += SOCKADDR_LL.pack(17, 0x0008, ifindex, 1, pkttype, 0)
        frame = header + bytes(NETWORK_OFFSET - len(header)) + data
        block += frame + bytes((following or len(frame)) - len(frame))
    return bytes(block)


def expected_frames(frames: list[RingFrame]) -> list[Frame]:
    expected = []
    for data, wire_length, ifindex, pkttype, seconds, nanos in frames:
        if pkttype == PACKET_OUTGOING and ifindex == LOOPBACK:
            continue
        if wire_length > len(data):
            continue  # cut short by the ring: lost whole
        segment = parse_ip(data)
        if segment is not None:
            expected.append(frame_of(seconds + nanos * 1e-9, NAMES[ifindex], segment))
    return expected


def read_block(frames: list[RingFrame]) -> tuple[list[Frame], int]:
    out: list[Frame] = []
    truncated = frames_of_block(
        ring_block(frames), 0, len(frames), NAMES.__getitem__, frozenset({LOOPBACK}), out
    )
    return out, truncated


@st.composite
def ipv4_frames(draw: st.DrawFn) -> bytes:
    """IPv4 frames near the fast path's edges: lengths, fragments, protocols, data offsets,
    cut anywhere."""
    header_words = draw(st.sampled_from([5, 5, 5, 6, 4, 15]))
    payload = draw(st.binary(max_size=64))
    data_offset = draw(st.sampled_from([5, 5, 8, 4, 0, 15]))
    options = bytes(max(0, header_words - 5) * 4)
    tcp_options = bytes(max(0, data_offset - 5) * 4)
    natural = header_words * 4 + 20 + len(tcp_options) + len(payload)
    total = draw(st.sampled_from([natural, natural, 0, natural + 1, natural - 1, 30, 39, 40]))
    fragment = draw(st.sampled_from([0, 0, 0x4000, 0x2000, 0x0001]))
    proto = draw(st.sampled_from([6, 6, 6, 17]))
    version_ihl = draw(st.sampled_from([0x40 | header_words, 0x40 | header_words, 0x60 | 5]))
    header = IPV4_TCP.pack(
        version_ihl, 0, max(0, min(total, 0xFFFF)), 1, fragment, 64, proto, 0,
        bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]),
        draw(st.integers(0, 0xFFFF)), 8080, draw(st.integers(0, 0xFFFF_FFFF)),
        draw(st.integers(0, 0xFFFF_FFFF)), data_offset << 4, draw(st.integers(0, 0xFF)), 0, 0, 0,
    )  # fmt: skip
    frame = header[:20] + options + header[20:] + tcp_options + payload
    return frame[: draw(st.integers(0, len(frame)))]


@st.composite
def ring_frames(draw: st.DrawFn) -> RingFrame:
    data = draw(st.one_of(ipv4_frames(), ipv4_frames(), st.binary(max_size=80)))
    return (
        data,
        len(data) + draw(st.sampled_from([0, 0, 0, 1, 100])),
        draw(st.sampled_from([VETH, VETH, LOOPBACK])),
        draw(st.sampled_from([0, 0, PACKET_OUTGOING])),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 999_999_999)),
    )


@settings(max_examples=500)
@given(st.lists(ring_frames(), min_size=1, max_size=12))
@example([(bytes(40), 40, VETH, 0, 0, 0)])
def test_a_block_reads_as_parse_ip_reads_each_frame(frames: list[RingFrame]) -> None:
    got, truncated = read_block(frames)
    assert got == expected_frames(frames)
    assert all(type(frame[2]) is bytes and type(frame[6]) is bytes for frame in got)
    assert truncated == sum(
        1
        for data, wire_length, ifindex, pkttype, _, _ in frames
        if wire_length > len(data) and not (pkttype == PACKET_OUTGOING and ifindex == LOOPBACK)
    )


def test_a_plain_segment_keeps_its_fields() -> None:
    frame = IPV4_TCP.pack(
        0x45, 0, 43, 1, 0x4000, 64, 6, 0, b"\xc6\x12\x00\x01", b"\xc6\x12\x00\x02",
        40000, 8080, 1, 2, 0x50, 0x18, 0, 0, 0,
    ) + b"GET"  # fmt: skip
    [(ts, interface, key, seq, ack, flags, payload)] = read_block(
        [(frame, len(frame), VETH, 0, 1700000000, 500_000_000)]
    )[0]
    assert (ts, interface) == (1700000000.5, "veth0")
    segment = segment_of(key, seq, ack, flags, payload)
    assert (segment.src, segment.sport, segment.dst, segment.dport) == (
        b"\xc6\x12\x00\x01",
        40000,
        b"\xc6\x12\x00\x02",
        8080,
    )
    assert (segment.seq, segment.ack, segment.flags, segment.payload) == (1, 2, 0x18, b"GET")


def addresses(size: int) -> st.SearchStrategy[tuple[bytes, bytes]]:
    return st.tuples(
        st.binary(min_size=size, max_size=size), st.binary(min_size=size, max_size=size)
    )


@given(st.sampled_from([4, 16]).flatmap(addresses), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_a_flow_key_gives_back_its_four_tuple(
    ends: tuple[bytes, bytes], sport: int, dport: int
) -> None:
    src, dst = ends
    segment = segment_of(flow_key(src, sport, dst, dport), 1, 2, 3, b"")
    assert (segment.src, segment.sport, segment.dst, segment.dport) == (src, sport, dst, dport)


def test_plain_ipv4_frames_never_take_the_general_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is what reads the flood: a plain IPv4 segment must not reach parse_ip
    (nor build a Segment), while an IPv6 one does."""
    general: list[bytes] = []

    def counting_parse_ip(buffer: bytes, start: int = 0, end: int = -1) -> object:
        general.append(bytes(buffer[start:end]))
        return parse_ip(buffer, start, end)

    monkeypatch.setattr("agent.capture.parse_ip", counting_parse_ip)
    plain = IPV4_TCP.pack(
        0x45, 0, 43, 1, 0x4000, 64, 6, 0, b"\xc6\x12\x00\x01", b"\xc6\x12\x00\x02",
        40000, 8080, 1, 2, 0x50, 0x18, 0, 0, 0,
    ) + b"GET"  # fmt: skip
    ipv6 = bytes([0x60]) + bytes(3) + (23).to_bytes(2, "big") + bytes([6, 64]) + bytes(32)
    ipv6 += struct.pack("!HHIIBBHHH", 40000, 8080, 1, 2, 0x50, 0x18, 0, 0, 0) + b"PUT"
    frames, _ = read_block(
        [(plain, len(plain), VETH, 0, 1, 0)] * 3 + [(ipv6, len(ipv6), VETH, 0, 1, 0)]
    )
    assert [frame[6] for frame in frames] == [b"GET", b"GET", b"GET", b"PUT"]
    assert general == [ipv6]


@pytest.mark.parametrize("version", [4, 6])
def test_a_super_packet_the_ring_cut_short_is_lost_whole_not_read_as_shorter(version: int) -> None:
    """An offloaded super-packet says 0 for its IP length, so the captured length is all
    there is to go by; when the ring cut it short (a frame larger than its block), reading
    what was captured would hand on a prefix of the payload as the whole of it (and a FIN in
    it would end the stream early), with nothing to say that the rest is missing."""
    payload = bytes(range(256)) * 8
    if version == 4:
        header = IPV4_TCP.pack(
            0x45, 0, 0, 1, 0x4000, 64, 6, 0, b"\xc6\x12\x00\x01", b"\xc6\x12\x00\x02",
            40000, 8080, 1, 2, 0x50, 0x19, 0, 0, 0,
        )  # fmt: skip
    else:
        header = bytes([0x60]) + bytes(3) + bytes(2) + bytes([6, 64]) + bytes(32)
        header += struct.pack("!HHIIBBHHH", 40000, 8080, 1, 2, 0x50, 0x19, 0, 0, 0)
    whole = header + payload
    frames, truncated = read_block(
        [(whole, len(whole), VETH, 0, 1, 0), (whole[:1000], len(whole), VETH, 0, 1, 0)]
    )
    assert [frame[6] for frame in frames] == [payload]
    assert truncated == 1
