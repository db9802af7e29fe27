"""Parsing captured frames into TCP segments (sans-IO: bytes in, values out)."""

from __future__ import annotations

from typing import NamedTuple

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
