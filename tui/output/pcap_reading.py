"""pcap files read as events: any pcap or pcapng (tcpdump's too) is read with scapy, each
frame's IP packet parsed by the agent's own parser and reassembled by the agent's own
reassembler, so a file gives the same events a live capture of that traffic would have.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from scapy.utils import RawPcapReader

from agent.errors import UserError
from agent.events import AnyEvent
from agent.packet import ACK, SYN, Segment, parse_ip
from agent.tcp import Reassembler
from tui.model.timestamps import plausible_time

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
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}.") from None
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
