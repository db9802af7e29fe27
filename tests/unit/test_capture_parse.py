"""agent.capture.parse_frame, the ring's fast path, must say exactly what agent.packet.parse_ip
says, frame for frame, including every refusal."""

from __future__ import annotations

import struct

from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.capture import parse_frame
from agent.packet import Segment, parse_ip

IPV4_TCP = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")


@st.composite
def ipv4_frames(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """IPv4 frames near the fast path's edges: lengths, fragments, protocols, data offsets,
    cut anywhere, at an offset in a larger buffer."""
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
    prefix = bytes(draw(st.integers(0, 8)))
    buffer = prefix + frame + bytes(draw(st.integers(0, 8)))
    start = len(prefix)
    end = start + draw(st.integers(0, len(frame)))
    return buffer, start, end


@settings(max_examples=1000)
@given(ipv4_frames())
@example((bytes(40), 0, 40))
def test_the_fast_path_agrees_with_parse_ip(case: tuple[bytes, int, int]) -> None:
    buffer, start, end = case
    expected = parse_ip(buffer, start, end)
    got = parse_frame(buffer, start, end)
    assert got == expected
    assert type(got) is type(expected)


@given(st.binary(max_size=80), st.integers(0, 80), st.integers(0, 80))
def test_it_agrees_on_arbitrary_bytes(buffer: bytes, start: int, end: int) -> None:
    start, end = min(start, len(buffer)), min(end, len(buffer))
    assert parse_frame(buffer, start, end) == parse_ip(buffer, start, end)


def test_a_plain_segment_is_a_segment() -> None:
    frame = IPV4_TCP.pack(
        0x45, 0, 43, 1, 0x4000, 64, 6, 0, b"\xc6\x12\x00\x01", b"\xc6\x12\x00\x02",
        40000, 8080, 1, 2, 0x50, 0x18, 0, 0, 0,
    ) + b"GET"  # fmt: skip
    segment = parse_frame(memoryview(frame), 0, len(frame))
    assert isinstance(segment, Segment)
    assert segment.payload == b"GET"
    assert (segment.sport, segment.dport, segment.flags) == (40000, 8080, 0x18)
