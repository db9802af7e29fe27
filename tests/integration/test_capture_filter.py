"""The BPF filter in the real kernel: crafted packets sent from the host into a lab namespace;
only those that matter come out of the capture."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.packet import Packet, Raw

from agent.capture import Capture
from agent.netns import named_namespace
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.timeout(30)]

SENTINEL = 0xFFFF0000


def crafted(lab: Lab) -> list[tuple[Packet, bool]]:
    """(packet, should it be captured), each marked by a distinct TCP sequence number."""

    def v4(seq: int, tcp_flags: str, payload: bytes = b"", dport: int = 80, **ip: Any) -> Packet:
        packet: Packet = (
            IP(src=lab.host_ip, dst=lab.ns_ip, **ip)
            / TCP(sport=40000 + seq % 20000, dport=dport, seq=seq, flags=tcp_flags)
            / Raw(payload)
        )
        return packet

    def v6(seq: int, flags: str, payload: bytes = b"", *ext: Packet, dport: int = 80) -> Packet:
        packet: Any = IPv6(src=lab.host_ip6, dst=lab.ns_ip6)
        for extension in ext:
            packet = packet / extension
        packet = packet / TCP(sport=40000 + seq % 20000, dport=dport, seq=seq, flags=flags)
        return packet / Raw(payload)  # type: ignore[no-any-return]

    return [
        (v4(1, "S"), True),
        (v4(2, "A"), False),
        (v4(3, "PA", b"GET / HTTP/1.1\r\n\r\n"), True),
        (v4(4, "FA"), True),
        (v4(5, "R"), True),
        (v4(6, "S", dport=81), False),
        (v4(7, "PA", b"data", dport=8080), True),
        (v4(8, "S", flags="MF"), False),
        (v4(9, "PA", b"x" * 1200, flags="DF"), True),
        (v4(10, "A", options=[b"\x01\x01\x01\x00"]), False),
        (v4(11, "S", options=[b"\x01\x01\x01\x00"]), True),
        (IP(src=lab.host_ip, dst=lab.ns_ip) / UDP(sport=80, dport=80) / Raw(b"u" * 30), False),
        (v6(21, "S"), True),
        (v6(22, "A"), False),
        (v6(23, "PA", b"hello"), True),
        (v6(24, "PA", b"hello", dport=443), False),
        (v6(25, "PA", b"behind", IPv6ExtHdrHopByHop()), True),
        (v6(26, "A", b"", IPv6ExtHdrDestOpt()), False),
        (v6(27, "S", b"", IPv6ExtHdrFragment()), False),
        (v4(SENTINEL, "S"), True),
    ]


def send_raw(packets: list[Packet]) -> None:
    """Send whole IP packets from the host; the kernel routes them over the lab's veth."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw4,
        socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw6,
    ):
        for packet in packets:
            out = raw6 if isinstance(packet, IPv6) else raw4
            out.sendto(bytes(packet), (packet.dst, 0))


def test_kernel_passes_only_segments_that_matter(lab: Lab) -> None:
    resolve_neighbours(lab.ns_ip, lab.ns_ip6)
    packets = crafted(lab)
    with Capture(named_namespace(lab.name), [80, 8080]) as capture:
        sent_at = time.time()
        send_raw([packet for packet, _ in packets])
        seen: list[int] = []
        deadline = time.monotonic() + 5
        while SENTINEL not in seen and time.monotonic() < deadline:
            for timestamp, interface, segment in capture.read_batch(0.2):
                if segment.dport in (80, 8080, 81, 443) and segment.sport >= 40000:
                    seen.append(segment.seq)
                    assert interface.startswith("vn")
                    assert sent_at - 0.01 <= timestamp <= time.time()
        packets_seen, drops = capture.kernel_counters()
        # The kernel resets its counters when read; the capture keeps the running sum.
        assert capture.kernel_counters() == (packets_seen, drops)
    expected = [packet[TCP].seq for packet, passes in packets if passes]
    assert seen == expected
    assert drops == 0
    # The namespace answers some crafted SYNs with RSTs; those pass too, nothing else does.
    assert packets_seen >= len(expected)


def resolve_neighbours(*addresses: str) -> None:
    """One UDP datagram to each address, so that no crafted packet waits in an ARP/ND queue."""
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"", (address, 9))
    time.sleep(0.2)
