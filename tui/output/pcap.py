"""pcap: the reassembled streams written back as TCP packets (read by tui.output.pcap_reading).

The agent delivers byte streams, not packets, so each connection is synthesised the way a
capture of it would look: a three-way handshake (unless it was joined mid-stream), data
segments whose sequence and acknowledgement numbers follow the bytes sent each way, the capture
times of the events, and FIN/ACK or RST at the end. A gap advances the sequence number without
sending the bytes, which is exactly how Wireshark sees a segment the capture missed. Packets are
Ethernet frames between two made-up MAC addresses, each after its 16-byte pcap record header.
A connection no packet can carry (an address that is none, IPv4 to IPv6, a port past 65535: a
stranger's recording may hold one) is left out, and counted with its data so that whoever writes
the file says so (``left_out``).

A flood brings a frame per event, hundreds of thousands a second, so a frame costs little: what
never changes on a connection (MAC and IP addresses, ports, and their share of both checksums)
is prepared once when it opens, a frame's headers are then packed in one call with only its
lengths, sequence numbers and checksums, the checksums are integer arithmetic done in C
(tui.output.ones_complement), and a batch of events is written in one call.
"""

from __future__ import annotations

import ipaddress
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from agent.events import AnyEvent, ConnectionClosed, ConnectionOpened, DataReceived, Gap
from tui.model.timestamps import LATEST, plausible_time
from tui.model.updates import AgentEvent, Update
from tui.model.wording import counted
from tui.output.ones_complement import MODULUS, word_sum

SEGMENT_SIZE = 16_384
"""Payload bytes per synthesised segment (large, like what offloading captures show)."""

SNAP_LENGTH = 262_144
# The pcap global header (nanosecond timestamps, version 2.4, Ethernet) and each packet's record
# header (seconds, nanoseconds, bytes kept, bytes on the wire), little-endian.
_GLOBAL_HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, SNAP_LENGTH, 1)
_RECORD_HEADER = struct.Struct("<IIII")

_CLIENT_MAC = bytes.fromhex("027064000001")
_SERVER_MAC = bytes.fromhex("027064000002")
_MASK = 0xFFFF_FFFF
_FIN, _SYN, _RST, _PSH, _ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_DATA = _PSH | _ACK  # the flags of every segment that carries bytes

# A frame's headers, from the Ethernet destination to the TCP urgent pointer. The constant
# parts come in as strings: the Ethernet header with the IP header's first 2 (IPv4) or 4
# (IPv6) bytes, then the addresses and ports. IPv4: total length, identification 0, "don't
# fragment" + TTL 64 + protocol 6, header checksum. IPv6: payload length, next header 6 + hop
# limit 64. Then TCP: sequence and acknowledgement numbers, data offset (5 words) + flags +
# window (65535) as one word, checksum, urgent pointer 0.
_IPV4_FRAME = struct.Struct("!16sHxxIH12sIIIHxx")
_IPV6_FRAME = struct.Struct("!18sHH36sIIIHxx")
_IPV4_FIXED = 0x4000_4006
_IPV6_FIXED = 0x0640
_TCP_FIXED = 0x5000_FFFF
# The EtherType, then the IP header's first bytes: version, header length, traffic class, flow.
_ETHERNET_IPV4 = b"\x08\x00\x45\x00"
_ETHERNET_IPV6 = b"\x86\xdd\x60\x00\x00\x00"


@dataclass(slots=True)
class _Flow:
    ipv6: bool
    ip_sum: int
    """The IPv4 header's words that never change on this connection, summed (modulo 0xFFFF):
    the same both ways, since a sum does not care which address is the source."""
    tcp_sum: int
    """The same for the TCP pseudo-header and header: addresses, protocol, ports."""
    to_server: tuple[bytes, bytes]
    """From the client: the Ethernet header with the IP header's start, and the IP addresses
    with the TCP ports."""
    to_client: tuple[bytes, bytes]
    client_next: int
    server_next: int


def _add_packets(
    parts: list[bytes],
    flow: _Flow,
    from_client: bool,
    flags: int,
    seq: int,
    ack: int,
    payload: bytes,
    ts: float,
) -> int:
    """Append the records of the packets that carry ``payload`` (one per SEGMENT_SIZE bytes, or
    one without any) from sequence number ``seq``, and return the next one.

    Headers are packed directly, checksums included: building packets with scapy's layers costs
    a millisecond each, which would cap a capture at a few hundred exchanges a second (the tests
    check every checksum against scapy's and tshark's).
    """
    length = len(payload)
    if length > SEGMENT_SIZE:
        for offset in range(0, length, SEGMENT_SIZE):
            chunk = payload[offset : offset + SEGMENT_SIZE]
            seq = _add_packets(parts, flow, from_client, flags, seq, ack, chunk, ts)
        return seq
    if not 0.0 <= ts <= LATEST:
        ts = plausible_time(ts)
    seconds = int(ts)
    nanoseconds = int((ts - seconds) * 1e9 + 0.5)
    if nanoseconds > 999_999_999:
        nanoseconds = 999_999_999
    start, addresses = flow.to_server if from_client else flow.to_client
    tcp_word = _TCP_FIXED | flags << 16
    tcp_length = 20 + length
    # Words of 32 bits add as their two halves would, modulo 0xFFFF (2**16 is 1 modulo it). A
    # checksum is the negated sum (ones_complement.checksum_of, written out: no call per packet).
    tcp_sum = flow.tcp_sum + tcp_length + seq + ack + tcp_word + word_sum(payload)
    if flow.ipv6:
        headers = _IPV6_FRAME.pack(
            start, tcp_length, _IPV6_FIXED, addresses, seq, ack, tcp_word, -tcp_sum % MODULUS
        )
    else:
        ip_length = 20 + tcp_length
        headers = _IPV4_FRAME.pack(
            start,
            ip_length,
            _IPV4_FIXED,
            -(flow.ip_sum + ip_length) % MODULUS,
            addresses,
            seq,
            ack,
            tcp_word,
            -tcp_sum % MODULUS,
        )
    size = len(headers) + length
    parts += (_RECORD_HEADER.pack(seconds, nanoseconds, size, size), headers, payload)
    return (seq + length) & _MASK


class PcapFileWriter:
    """A pcap file of the events it is given, one state per connection; valid (header first)
    from the start, nanosecond timestamps."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        stream.write(_GLOBAL_HEADER)
        self._flows: dict[tuple[str, int], _Flow] = {}
        self.packets = 0
        # What the file leaves out, to be said by whoever writes it: a loss nobody reports is
        # the worst there is. The agent never causes one; a stranger's recording may.
        self.connections_left_out = 0
        """Openings that no packet can carry (see ``_flow_of``)."""
        self.data_events_left_out = 0
        self.bytes_left_out = 0
        """Payload of data events on connections without packets: those left out above, and
        any whose opening this writer was never given."""

    def write(self, source: str, event: AnyEvent) -> None:
        self.write_updates((AgentEvent(source, event),))

    def write_events(self, source: str, events: Iterable[AnyEvent]) -> None:
        self.write_updates([AgentEvent(source, event) for event in events])

    def write_updates(self, updates: Iterable[Update]) -> None:
        """The events among ``updates`` (a batch from the agents), in one write."""
        parts: list[bytes] = []
        flows = self._flows
        for update in updates:
            if not isinstance(update, AgentEvent):
                continue
            event = update.event
            if not isinstance(event, DataReceived):
                self._add_control(parts, update.source, event)
                continue
            # Nearly every event of a flood, so handled here rather than one call further.
            flow = flows.get((update.source, event.conn))
            # No flow: its opening was not given or cannot be shown, so it has no addresses.
            if flow is None:
                if event.data:
                    self.data_events_left_out += 1
                    self.bytes_left_out += len(event.data)
                continue
            if not event.data:
                continue  # no packet: an empty payload would make one without any
            if event.direction == "in":
                flow.client_next = _add_packets(
                    parts,
                    flow,
                    True,
                    _DATA,
                    flow.client_next,
                    flow.server_next,
                    event.data,
                    event.ts,
                )
            else:
                flow.server_next = _add_packets(
                    parts,
                    flow,
                    False,
                    _DATA,
                    flow.server_next,
                    flow.client_next,
                    event.data,
                    event.ts,
                )
        # Three parts a packet: record header, frame headers, payload (empty in packets that
        # carry none).
        if parts:
            self._stream.write(b"".join(parts))
            self.packets += len(parts) // 3

    def flush(self) -> None:
        self._stream.flush()

    def left_out(self) -> str:
        """What the file leaves out so far, as the object of "leaves out" ("" if nothing)."""
        said = []
        if self.connections_left_out:
            said.append(counted(self.connections_left_out, "connection"))
        if self.data_events_left_out:
            said.append(
                f"{counted(self.bytes_left_out, 'byte')} of data "
                f"({counted(self.data_events_left_out, 'event')})"
            )
        if not said:
            return ""
        return (
            f"{' and '.join(said)} it cannot show as TCP packets "
            "(an address or port no packet can carry, or a connection it never saw open)"
        )

    def _add_control(self, parts: list[bytes], source: str, event: AnyEvent) -> None:
        """Append the records of the packets that open or close a connection to ``parts``; a
        gap only moves the sequence numbers on."""
        if isinstance(event, ConnectionOpened):
            flow = _flow_of(source, event)
            if flow is None:
                self.connections_left_out += 1
            else:
                self._flows[(source, event.conn)] = flow
                if not event.mid_stream:
                    _add_handshake(parts, flow, event.ts)
        elif isinstance(event, Gap):
            flow = self._flows.get((source, event.conn))
            if flow is None:
                return
            if event.direction == "in":
                flow.client_next = (flow.client_next + event.length) & _MASK
            else:
                flow.server_next = (flow.server_next + event.length) & _MASK
        elif isinstance(event, ConnectionClosed):
            flow = self._flows.pop((source, event.conn), None)
            if flow is not None:
                _add_close(parts, flow, event.reason, event.ts)


def _flow_of(source: str, event: ConnectionOpened) -> _Flow | None:
    """A new connection's constant parts, or None for an opening a pcap cannot show (no or
    mixed addresses, ports out of range: made up, or from a stranger's recording)."""
    try:
        client = ipaddress.ip_address(event.client).packed
        server = ipaddress.ip_address(event.server).packed
    except ValueError:
        return None
    ports = (event.client_port, event.server_port)
    if len(client) != len(server) or not all(0 <= port <= 0xFFFF for port in ports):
        return None
    ipv6 = len(server) == 16
    ports_out = struct.pack("!HH", *ports)
    ports_back = struct.pack("!HH", *reversed(ports))
    ethernet = _ETHERNET_IPV6 if ipv6 else _ETHERNET_IPV4
    address_sum = int.from_bytes(client, "big") + int.from_bytes(server, "big")
    # Initial sequence numbers from the connection's identity: the same recording gives the
    # same file.
    seed = f"{(source, event.conn)}{event.client}{event.client_port}".encode()
    return _Flow(
        ipv6=ipv6,
        ip_sum=(0x4500 + _IPV4_FIXED + address_sum) % MODULUS,
        tcp_sum=(address_sum + 6 + sum(ports)) % MODULUS,
        to_server=(_SERVER_MAC + _CLIENT_MAC + ethernet, client + server + ports_out),
        to_client=(_CLIENT_MAC + _SERVER_MAC + ethernet, server + client + ports_back),
        client_next=zlib.crc32(seed),
        server_next=zlib.crc32(seed[::-1]),
    )


def _add_handshake(parts: list[bytes], flow: _Flow, ts: float) -> None:
    client_isn, server_isn = flow.client_next, flow.server_next
    # A SYN takes one sequence number, as a byte would.
    client, server = (client_isn + 1) & _MASK, (server_isn + 1) & _MASK
    _add_packets(parts, flow, True, _SYN, client_isn, 0, b"", ts)
    _add_packets(parts, flow, False, _SYN | _ACK, server_isn, client, b"", ts)
    _add_packets(parts, flow, True, _ACK, client, server, b"", ts)
    flow.client_next, flow.server_next = client, server


def _add_close(parts: list[bytes], flow: _Flow, reason: str, ts: float) -> None:
    client, server = flow.client_next, flow.server_next
    if reason == "rst":
        _add_packets(parts, flow, True, _RST | _ACK, client, server, b"", ts)
    elif reason == "fin":
        # A FIN takes one sequence number, as a byte would.
        client_after, server_after = (client + 1) & _MASK, (server + 1) & _MASK
        _add_packets(parts, flow, True, _FIN | _ACK, client, server, b"", ts)
        _add_packets(parts, flow, False, _FIN | _ACK, server, client_after, b"", ts)
        _add_packets(parts, flow, True, _ACK, client_after, server_after, b"", ts)
    # Otherwise the capture ended (or gave up on it) while it was still open: no packet.
