"""pcap: the reassembled streams written back as TCP packets, and pcap files read as events.

Writing: the agent delivers byte streams, not packets, so each connection is synthesised the way
a capture of it would look: a three-way handshake (unless it was joined mid-stream), data
segments whose sequence and acknowledgement numbers follow the bytes sent each way, the capture
times of the events, and FIN/ACK or RST at the end. A gap advances the sequence number without
sending the bytes, which is exactly how Wireshark sees a segment the capture missed. Packets are
Ethernet frames between two made-up MAC addresses, each after its 16-byte pcap record header
(packed here: scapy's writer costs more per packet than building the frame does).

Reading: any pcap or pcapng (tcpdump's too) is read with scapy, each frame's IP packet parsed
by the agent's own parser and reassembled by the agent's own reassembler, so a file gives the
same events a live capture of that traffic would have.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple

from scapy.utils import RawPcapReader, checksum

from agent.errors import UserError
from agent.events import (
    AnyEvent,
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    Gap,
)
from agent.packet import ACK, SYN, Segment, parse_ip
from agent.tcp import Reassembler
from tui.model.timestamps import plausible_time

SEGMENT_SIZE = 16_384
"""Payload bytes per synthesised segment (large, like what offloading captures show)."""

_CLIENT_MAC = bytes.fromhex("027064000001")
_SERVER_MAC = bytes.fromhex("027064000002")
_MASK = 0xFFFF_FFFF

_FIN, _SYN, _RST, _PSH, _ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
_TCP_HEADER = struct.Struct("!HHIIBBHHH")
_ETHERTYPE = {False: b"\x08\x00", True: b"\x86\xdd"}

SNAP_LENGTH = 262_144
# The pcap global header (nanosecond timestamps, version 2.4, Ethernet) and each packet's record
# header (seconds, nanoseconds, bytes kept, bytes on the wire), little-endian.
_GLOBAL_HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, SNAP_LENGTH, 1)
_RECORD_HEADER = struct.Struct("<IIII")


@dataclass(slots=True)
class _Flow:
    client: bytes
    client_port: int
    server: bytes
    server_port: int
    client_next: int
    server_next: int
    ipv6: bool


class Frame(NamedTuple):
    """One synthesised Ethernet frame and its capture time (a tuple: made for every packet of
    a flood, at a fraction of a frozen dataclass's cost)."""

    ts: float
    data: bytes


def _frame(
    flow: _Flow, from_client: bool, flags: int, seq: int, ack: int, payload: bytes, ts: float
) -> Frame:
    """Ethernet + IPv4/IPv6 + TCP with correct checksums, built directly: building it with
    scapy's layers costs a millisecond per packet, which would cap a capture at a few hundred
    exchanges a second (the test suite checks that scapy dissects these frames as intended)."""
    if from_client:
        src, sport, dst, dport = flow.client, flow.client_port, flow.server, flow.server_port
        macs = _SERVER_MAC + _CLIENT_MAC
    else:
        src, sport, dst, dport = flow.server, flow.server_port, flow.client, flow.client_port
        macs = _CLIENT_MAC + _SERVER_MAC
    tcp_length = 20 + len(payload)
    tcp = _TCP_HEADER.pack(
        sport, dport, seq & _MASK, ack & _MASK if flags & _ACK else 0, 5 << 4, flags, 65535, 0, 0
    )
    pseudo = (
        src
        + dst
        + struct.pack(
            "!IxxxB" if flow.ipv6 else "!xBH", *((tcp_length, 6) if flow.ipv6 else (6, tcp_length))
        )
    )
    tcp_checksum = checksum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", tcp_checksum) + tcp[18:]
    if flow.ipv6:
        ip = struct.pack("!IHBB", 6 << 28, tcp_length, 6, 64) + src + dst
    else:
        header = _IPV4_HEADER.pack(0x45, 0, 20 + tcp_length, 0, 0x4000, 64, 6, 0, src, dst)
        ip = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return Frame(ts, macs + _ETHERTYPE[flow.ipv6] + ip + tcp + payload)


class PacketSynthesizer:
    """Events in, frames (with their capture times) out: one state per connection."""

    def __init__(self) -> None:
        self._flows: dict[tuple[str, int], _Flow] = {}
        self.packets = 0

    def packets_for(self, source: str, event: AnyEvent) -> list[Frame]:
        key = (source, getattr(event, "conn", -1))
        if isinstance(event, ConnectionOpened):
            frames = self._open(key, event)
        else:
            flow = self._flows.get(key)
            if flow is None:
                return []  # its opening was not recorded: its addresses are unknown
            if isinstance(event, DataReceived):
                frames = self._data(flow, event.direction == "in", event.data, event.ts)
            elif isinstance(event, Gap):
                if event.direction == "in":
                    flow.client_next = (flow.client_next + event.length) & _MASK
                else:
                    flow.server_next = (flow.server_next + event.length) & _MASK
                return []
            elif isinstance(event, ConnectionClosed):
                del self._flows[key]
                frames = self._close(flow, event.reason, event.ts)
            else:
                return []
        self.packets += len(frames)
        return frames

    def _open(self, key: tuple[str, int], event: ConnectionOpened) -> list[Frame]:
        # Initial sequence numbers from the connection's identity: the same recording gives the
        # same file.
        seed = f"{key}{event.client}{event.client_port}".encode()
        client_isn = zlib.crc32(seed)
        server_isn = zlib.crc32(seed[::-1])
        try:
            client = ipaddress.ip_address(event.client).packed
            server = ipaddress.ip_address(event.server).packed
        except ValueError:
            return []  # an opening without addresses (made up): nothing a pcap can show
        if len(client) != len(server):
            return []
        flow = _Flow(
            client,
            event.client_port,
            server,
            event.server_port,
            client_isn,
            server_isn,
            len(server) == 16,
        )
        self._flows[key] = flow
        if event.mid_stream:
            return []
        ts = event.ts
        frames = [
            _frame(flow, True, _SYN, client_isn, 0, b"", ts),
            _frame(flow, False, _SYN | _ACK, server_isn, client_isn + 1, b"", ts),
            _frame(flow, True, _ACK, client_isn + 1, server_isn + 1, b"", ts),
        ]
        flow.client_next = (client_isn + 1) & _MASK
        flow.server_next = (server_isn + 1) & _MASK
        return frames

    def _data(self, flow: _Flow, from_client: bool, data: bytes, ts: float) -> list[Frame]:
        frames = []
        for start in range(0, len(data), SEGMENT_SIZE):
            chunk = data[start : start + SEGMENT_SIZE]
            if from_client:
                frames.append(
                    _frame(flow, True, _PSH | _ACK, flow.client_next, flow.server_next, chunk, ts)
                )
                flow.client_next = (flow.client_next + len(chunk)) & _MASK
            else:
                frames.append(
                    _frame(flow, False, _PSH | _ACK, flow.server_next, flow.client_next, chunk, ts)
                )
                flow.server_next = (flow.server_next + len(chunk)) & _MASK
        return frames

    def _close(self, flow: _Flow, reason: str, ts: float) -> list[Frame]:
        if reason == "rst":
            return [_frame(flow, True, _RST | _ACK, flow.client_next, flow.server_next, b"", ts)]
        if reason != "fin":
            return []  # the capture ended (or gave up on it) while it was still open
        client_fin, server_fin = flow.client_next, flow.server_next
        return [
            _frame(flow, True, _FIN | _ACK, client_fin, server_fin, b"", ts),
            _frame(flow, False, _FIN | _ACK, server_fin, client_fin + 1, b"", ts),
            _frame(flow, True, _ACK, client_fin + 1, server_fin + 1, b"", ts),
        ]


class PcapFileWriter:
    """A pcap file of the events it is given; valid (header first) from the start,
    nanosecond timestamps."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        stream.write(_GLOBAL_HEADER)
        self._synthesizer = PacketSynthesizer()

    def write(self, source: str, event: AnyEvent) -> None:
        write = self._stream.write
        pack = _RECORD_HEADER.pack
        for ts, data in self._synthesizer.packets_for(source, event):
            seconds = int(ts)
            nanoseconds = min(999_999_999, round((ts - seconds) * 1e9))
            size = len(data)
            write(pack(seconds, nanoseconds, size, size))
            write(data)

    def flush(self) -> None:
        self._stream.flush()

    @property
    def packets(self) -> int:
        return self._synthesizer.packets


# ------------------------------------------------------------------------------- reading

_ETHERTYPE_IP = frozenset((0x0800, 0x86DD))
_VLAN = frozenset((0x8100, 0x88A8, 0x9100))


def ip_offset(linktype: int, frame: bytes) -> int | None:
    """Where the IP packet starts in a frame of ``linktype``, or None if it carries none."""
    if linktype == 1:  # Ethernet, possibly VLAN-tagged
        offset = 12
        while len(frame) >= offset + 2:
            (ethertype,) = struct.unpack_from("!H", frame, offset)
            if ethertype in _VLAN:
                offset += 4
                continue
            return offset + 2 if ethertype in _ETHERTYPE_IP else None
        return None
    if linktype == 113:  # Linux cooked capture (tcpdump -i any, older)
        return 16
    if linktype == 276:  # Linux cooked capture v2 (tcpdump -i any)
        return 20
    if linktype in (12, 14, 101, 228, 229):  # raw IP
        return 0
    if linktype in (0, 108):  # BSD loopback: a 4-byte address family
        return 4
    return None


def _frames(path: str) -> Iterator[tuple[float, Segment]]:
    # A capture cut short (tcpdump killed mid-write) is read up to its last whole packet; scapy
    # would also print a warning to the terminal the app is drawing on.
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    try:
        reader = RawPcapReader(path)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist.") from None
    except Exception as error:  # scapy raises its own exception for anything not a capture
        raise UserError(f"{path} is not a pcap or pcapng file ({error}).") from None
    with reader:
        default_linktype = getattr(reader, "linktype", 1)
        for number, (frame, metadata) in enumerate(_records(reader, path), 1):
            meta: Any = metadata  # pcap and pcapng readers give different named tuples
            linktype = getattr(meta, "linktype", default_linktype)
            if hasattr(meta, "tshigh"):
                ts = ((meta.tshigh << 32) | meta.tslow) / (meta.tsresol or 1_000_000)
            else:
                ts = meta.sec + meta.usec / (1e9 if getattr(reader, "nano", False) else 1e6)
            ts = plausible_time(ts)
            if not isinstance(frame, bytes):
                raise UserError(f"{path}: packet {number} cannot be read (no frame bytes).")
            if meta.wirelen > len(frame):
                # Cut short by the snap length: lost whole, so that the next segment shows the
                # gap. Read, it would pass for a shorter segment whenever its IP length is 0 (an
                # offloaded super-packet), and the bytes each side of the hole would be joined.
                continue
            offset = ip_offset(linktype, frame)
            if offset is None:
                continue
            segment = parse_ip(frame, offset)
            if segment is not None:
                yield ts, segment


def _records(reader: Any, path: str) -> Iterator[tuple[bytes, Any]]:
    """The reader's (frame, metadata) records; one that scapy cannot read is one sentence."""
    number = 0
    iterator = iter(reader)
    while True:
        number += 1
        try:
            record = next(iterator)
        except StopIteration:
            return
        except Exception as error:  # scapy raises its own exceptions, and struct's, and more
            raise UserError(f"{path}: packet {number} cannot be read ({error}).") from None
        yield record


def guess_server_ports(path: str) -> list[int]:
    """The ports clients connected to (from SYNs), else the lower port of every flow."""
    syn_ports: Counter[int] = Counter()
    lower_ports: Counter[int] = Counter()
    for _ts, segment in _frames(path):
        if segment.flags & SYN and not segment.flags & ACK:
            syn_ports[segment.dport] += 1
        lower_ports[min(segment.sport, segment.dport)] += 1
    return sorted(syn_ports or lower_ports)


def read_pcap(path: str, ports: Sequence[int]) -> Iterator[AnyEvent]:
    """The events a capture of this traffic on ``ports`` would have given, numbered."""
    reassembler = Reassembler(frozenset(ports))
    seq = 0
    last = 0.0
    expire_at = 0.0
    for ts, segment in _frames(path):
        last = ts
        events = reassembler.feed(segment, ts)
        if ts >= expire_at:
            events += reassembler.expire(ts)
            expire_at = ts + 10.0
        for event in events:
            seq += 1
            event.seq = seq
            yield event
    for event in reassembler.close_all(last):
        seq += 1
        event.seq = seq
        yield event
