"""Parsing captured frames into TCP segments (sans-IO: bytes in, values out).

Frames come from a cooked (``SOCK_DGRAM``) packet socket, so they start at the IP header
whatever the link type (Ethernet, loopback, tunnels). The parser never raises on malformed or
truncated input: anything it cannot read whole is ``None``.

What is deliberately not parsed:
- IP fragments (IPv4 with MF set or a fragment offset, IPv6 with a Fragment header): TCP stacks
  avoid fragmentation (path MTU discovery), and a fragment carries part of a segment whose
  length the IP header does not tell, so passing it on would corrupt the stream. The in-kernel
  filter drops them too; the reassembler reports the missing bytes as a gap.
- Frames cut short by the capture (snap length below the IP length): returning a partial
  payload would misplace a FIN's sequence number, so the whole segment is treated as lost.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

if TYPE_CHECKING:
    from mmap import mmap

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10


class Segment(NamedTuple):
    """One TCP segment as seen on the wire. Addresses are packed (4 bytes for IPv4, 16 for
    IPv6) so that the hot path never formats them; ``payload`` is the TCP payload only."""

    src: bytes
    sport: int
    dst: bytes
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes


FlowKey: TypeAlias = bytes
"""One direction of a connection: source address, destination address, then both ports (two
bytes each, network order). It is what an IPv4 frame without options holds at bytes 12-24, so
the capture's fast path takes it from the frame in one piece: one small bytes object to hash
instead of a tuple of four."""

Frame: TypeAlias = tuple[float, str, FlowKey, int, int, int, bytes]
"""A captured segment as capture hands it to reassembly: capture time, interface, flow key,
seq, ack, flags, payload. A plain tuple, because building a Segment (a NamedTuple) costs more
than parsing the frame did."""

PROTO_TCP = 6
# IPv6 extension headers that share the generic (next header, length in 8-octet units) layout
# and can be stepped over; a Fragment header (44) or anything else ends the walk.
IPV6_SKIPPABLE = frozenset((0, 43, 60))
MAX_IPV6_EXTENSIONS = 8

_IPV4 = struct.Struct("!BxHxxHxBxx4s4s")  # version/ihl, total length, flags/frag, proto, addrs
_IPV6 = struct.Struct("!4xHBx16s16s")  # payload length, next header, addrs
_TCP = struct.Struct("!HHIIBB")  # ports, seq, ack, data offset, flags

Buffer: TypeAlias = "bytes | bytearray | memoryview | mmap"

_unpack_ipv4 = _IPV4.unpack_from
_unpack_ipv6 = _IPV6.unpack_from
_unpack_tcp = _TCP.unpack_from
_PORTS = struct.Struct("!HH")
_pack_ports = _PORTS.pack
_unpack_ports = _PORTS.unpack_from
_new_tuple = tuple.__new__


def parse_ip(buffer: Buffer, start: int = 0, end: int = -1) -> Segment | None:
    """The TCP segment in the IP packet ``buffer[start:end]`` (``end`` -1: to the end of the
    buffer), or ``None`` if it is not a whole, unfragmented TCP segment over IPv4 or IPv6.

    ``buffer`` may be anything ``struct.unpack_from`` and slicing accept (bytes, a memoryview,
    an ``mmap`` ring), so that a capture ring is parsed in place, without a copy per frame."""
    if end < 0:
        end = len(buffer)
    if end - start < 20:
        return None
    version = buffer[start] >> 4
    if version == 4:
        vihl, total, fragment, proto, src, dst = _unpack_ipv4(buffer, start)
        if proto != PROTO_TCP or fragment & 0x3FFF:
            return None
        tcp = start + (vihl & 0x0F) * 4
        # A zero total length is what segmentation offload leaves in super-packets larger
        # than 64 KiB: the captured length is then the only length there is.
        if total == 0:
            ip_end = end
        else:
            ip_end = start + total
            if ip_end > end:
                return None
        if tcp - start < 20:
            return None
    elif version == 6:
        if end - start < 40:
            return None
        payload_length, next_header, src, dst = _unpack_ipv6(buffer, start)
        tcp = start + 40
        # Zero here means a jumbogram or an offloaded super-packet: take the captured length.
        if payload_length == 0:
            ip_end = end
        else:
            ip_end = tcp + payload_length
            if ip_end > end:
                return None
        hops = 0
        while next_header != PROTO_TCP:
            if next_header not in IPV6_SKIPPABLE or hops == MAX_IPV6_EXTENSIONS:
                return None
            if tcp + 8 > ip_end:
                return None
            next_header = buffer[tcp]
            tcp += (buffer[tcp + 1] + 1) * 8
            hops += 1
    else:
        return None
    if tcp + 20 > ip_end:
        return None
    sport, dport, seq, ack, offset, flags = _unpack_tcp(buffer, tcp)
    header_length = (offset >> 4) * 4
    data = tcp + header_length
    if header_length < 20 or data > ip_end:
        return None
    return Segment(src, sport, dst, dport, seq, ack, flags, bytes(buffer[data:ip_end]))


def flow_key(src: bytes, sport: int, dst: bytes, dport: int) -> FlowKey:
    return src + dst + _pack_ports(sport, dport)


def frame_of(ts: float, interface: str, segment: Segment) -> Frame:
    src, sport, dst, dport, seq, ack, flags, payload = segment
    return (ts, interface, src + dst + _pack_ports(sport, dport), seq, ack, flags, payload)


def segment_of(key: FlowKey, seq: int, ack: int, flags: int, payload: bytes) -> Segment:
    """The Segment a flow key and the rest of a Frame stand for."""
    size = (len(key) - 4) >> 1
    sport, dport = _unpack_ports(key, size << 1)
    # tuple.__new__ spares the NamedTuple's Python-level constructor, a third of the cost.
    return _new_tuple(Segment, (key[:size], sport, key[size:-4], dport, seq, ack, flags, payload))
