"""agent.packet: frames built with scapy, as a cooked packet socket delivers them (from L3)."""

from __future__ import annotations

import mmap
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.packet import Raw

from agent.packet import ACK, FIN, PSH, RST, SYN, Segment, parse_ip

V4_SRC, V4_DST = "198.18.0.1", "198.18.0.2"
V6_SRC, V6_DST = "fd00:7a9::1", "fd00:7a9::2"


def v4(payload: bytes = b"hello", tcp_flags: str = "PA", **ip: Any) -> bytes:
    return bytes(
        IP(src=V4_SRC, dst=V4_DST, **ip)
        / TCP(sport=40000, dport=80, seq=1000, ack=2000, flags=tcp_flags)
        / Raw(payload)
    )


def v6(*extensions: object, payload: bytes = b"hello") -> bytes:
    packet = IPv6(src=V6_SRC, dst=V6_DST)
    for extension in extensions:
        packet = packet / extension
    return bytes(packet / TCP(sport=40000, dport=80, seq=7, ack=9, flags="PA") / Raw(payload))


def test_ipv4_segment_fields() -> None:
    segment = parse_ip(v4(b"GET / HTTP/1.1\r\n\r\n"))
    assert segment == Segment(
        socket.inet_aton(V4_SRC),
        40000,
        socket.inet_aton(V4_DST),
        80,
        1000,
        2000,
        PSH | ACK,
        b"GET / HTTP/1.1\r\n\r\n",
    )


@pytest.mark.parametrize(
    ("flags", "bits"), [("S", SYN), ("SA", SYN | ACK), ("FA", FIN | ACK), ("R", RST), ("A", ACK)]
)
def test_flags_without_payload(flags: str, bits: int) -> None:
    segment = parse_ip(v4(b"", tcp_flags=flags))
    assert segment is not None
    assert segment.flags == bits
    assert segment.payload == b""


def test_ipv4_options_and_tcp_options_are_skipped() -> None:
    frame = bytes(
        IP(src=V4_SRC, dst=V4_DST, options=[IPOption_NOP(), IPOption_RR()])
        / TCP(
            sport=1,
            dport=2,
            flags="PA",
            options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 2)), ("WScale", 7)],
        )
        / Raw(b"payload after options")
    )
    assert frame[0] & 0x0F > 5
    segment = parse_ip(frame)
    assert segment is not None
    assert segment.payload == b"payload after options"


def test_ethernet_padding_is_not_payload() -> None:
    # A minimum-size Ethernet frame pads short packets; the IP total length says where they end.
    segment = parse_ip(v4(b"") + b"\x00" * 6)
    assert segment is not None
    assert segment.payload == b""
    assert parse_ip(v6(payload=b"ab") + b"\xff" * 10) == parse_ip(v6(payload=b"ab"))


def test_zero_total_length_from_offload_uses_captured_length() -> None:
    frame = bytearray(v4(b"y" * 3000))
    frame[2:4] = b"\x00\x00"
    segment = parse_ip(frame)
    assert segment is not None
    assert segment.payload == b"y" * 3000


def test_large_offloaded_frame() -> None:
    segment = parse_ip(v4(b"z" * 65000))
    assert segment is not None
    assert len(segment.payload) == 65000


def test_ipv6_segment_fields() -> None:
    segment = parse_ip(v6())
    assert segment is not None
    assert segment.src == socket.inet_pton(socket.AF_INET6, V6_SRC)
    assert segment.dst == socket.inet_pton(socket.AF_INET6, V6_DST)
    assert (segment.sport, segment.dport, segment.seq, segment.ack) == (40000, 80, 7, 9)
    assert segment.payload == b"hello"


@pytest.mark.parametrize(
    "extensions",
    [
        [IPv6ExtHdrHopByHop()],
        [IPv6ExtHdrDestOpt()],
        [IPv6ExtHdrRouting()],
        [IPv6ExtHdrHopByHop(), IPv6ExtHdrRouting(), IPv6ExtHdrDestOpt()],
    ],
)
def test_ipv6_extension_headers_are_stepped_over(extensions: list[object]) -> None:
    segment = parse_ip(v6(*extensions, payload=b"behind extensions"))
    assert segment is not None
    assert segment.payload == b"behind extensions"


def test_ipv6_fragments_are_ignored() -> None:
    assert parse_ip(v6(IPv6ExtHdrFragment(m=1))) is None


@pytest.mark.parametrize(
    "ip", [{"flags": "MF"}, {"frag": 100}, {"flags": "MF", "frag": 3}], ids=str
)
def test_ipv4_fragments_are_ignored(ip: dict[str, Any]) -> None:
    assert parse_ip(v4(**ip)) is None


def test_dont_fragment_is_not_a_fragment() -> None:
    assert parse_ip(v4(flags="DF")) is not None


def test_not_tcp() -> None:
    assert parse_ip(bytes(IP(src=V4_SRC, dst=V4_DST) / UDP() / Raw(b"x" * 30))) is None
    assert parse_ip(bytes(IPv6(src=V6_SRC, dst=V6_DST) / UDP() / Raw(b"x" * 30))) is None


def test_truncated_capture_is_dropped_whole() -> None:
    frame = v4(b"0123456789")
    assert parse_ip(frame[:-1]) is None
    assert parse_ip(v6(payload=b"0123456789")[:-1]) is None


def test_parses_in_place_at_an_offset_of_any_buffer() -> None:
    frame = v6(payload=b"in place")
    ring = mmap.mmap(-1, 4096)
    ring[100 : 100 + len(frame)] = frame
    segment = parse_ip(ring, 100, 100 + len(frame))
    assert segment is not None
    assert segment.payload == b"in place"
    assert isinstance(segment.payload, bytes)
    view_segment = parse_ip(memoryview(b"junk" + frame), 4)
    assert view_segment is not None
    assert isinstance(view_segment.payload, bytes)
    assert view_segment.src == segment.src


@pytest.mark.parametrize(
    "frame", [v4(b"abc"), v6(payload=b"abc"), v6(IPv6ExtHdrHopByHop(), payload=b"")]
)
def test_every_truncation_is_none(frame: bytes) -> None:
    for length in range(len(frame)):
        assert parse_ip(frame[:length]) is None


@settings(max_examples=1000, deadline=None)
@given(
    st.tuples(st.sampled_from([b"", b"\x45", b"\x4f", b"\x60"]), st.binary(max_size=200)).map(
        b"".join
    )
)
def test_garbage_never_raises(data: bytes) -> None:
    result = parse_ip(data)
    assert result is None or isinstance(result, Segment)


CORRUPTIBLE = (
    v4(b"payload"),
    bytes(
        IP(src=V4_SRC, dst=V4_DST, options=[IPOption_NOP()] * 4)
        / TCP(options=[("MSS", 1460)])
        / Raw(b"x")
    ),
    v6(IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), payload=b"payload"),
)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(CORRUPTIBLE), st.integers(0, 99), st.integers(0, 255), st.integers(0, 3))
def test_corrupted_headers_never_raise(frame: bytes, position: int, value: int, cut: int) -> None:
    corrupted = bytearray(frame[: len(frame) - cut])
    corrupted[position % len(corrupted)] = value
    result = parse_ip(bytes(corrupted))
    assert result is None or isinstance(result, Segment)


@settings(max_examples=200, deadline=None)
@given(
    ipv6=st.booleans(),
    ports=st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
    numbers=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    flags=st.integers(0, 0xFF),
    tcp_option_words=st.integers(0, 10),
    payload=st.binary(max_size=1500),
    padding=st.binary(max_size=20),
)
def test_generated_segments_round_trip(
    ipv6: bool,
    ports: tuple[int, int],
    numbers: tuple[int, int],
    flags: int,
    tcp_option_words: int,
    payload: bytes,
    padding: bytes,
) -> None:
    tcp = TCP(
        sport=ports[0],
        dport=ports[1],
        seq=numbers[0],
        ack=numbers[1],
        flags=flags,
        options=[("NOP", None)] * (4 * tcp_option_words),
    )
    ip = IPv6(src=V6_SRC, dst=V6_DST) if ipv6 else IP(src=V4_SRC, dst=V4_DST)
    frame = bytes(ip / tcp / Raw(payload)) + padding
    segment = parse_ip(frame)
    assert segment is not None
    assert (segment.sport, segment.dport) == ports
    assert (segment.seq, segment.ack) == numbers
    assert segment.flags == flags
    assert segment.payload == payload
