"""agent.bpf: the filter program, run by a small classic-BPF interpreter on crafted packets.

The same program is checked by the real kernel in tests/integration/test_capture_filter.py;
here every branch is cheap to reach, including ones a live network rarely produces.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.packet import Packet, Raw

from agent import bpf
from agent.errors import UserError

PACKET_HOST = 0


class _OutOfBounds(Exception):
    pass


def run(
    program: Sequence[bpf.Instruction],
    packet: bytes,
    pkttype: int = PACKET_HOST,
    ifindex: int = 2,
) -> int:
    """What the kernel's classic BPF interpreter returns (the snap length; 0 drops)."""
    a = x = 0
    memory = [0] * 16
    pc = 0

    def load(offset: int, size: int) -> int:
        if bpf.SKF_NET_OFF <= offset < bpf.SKF_AD_OFF:
            offset -= bpf.SKF_NET_OFF  # the packet given starts at its network header
        elif offset < 0:
            ancillary = offset - bpf.SKF_AD_OFF
            return {bpf.SKF_AD_PKTTYPE: pkttype, bpf.SKF_AD_IFINDEX: ifindex}[ancillary]
        if offset + size > len(packet):
            raise _OutOfBounds
        return int.from_bytes(packet[offset : offset + size], "big")

    def signed(k: int) -> int:
        return k - (1 << 32) if k & 0x80000000 else k

    sizes = {bpf.W: 4, bpf.H: 2, bpf.B: 1}
    try:
        while True:
            ins = program[pc]
            pc += 1
            cls, k = ins.code & 0x07, ins.k
            if cls == bpf.LD:
                mode, size = ins.code & 0xE0, sizes[ins.code & 0x18]
                if mode == bpf.ABS:
                    a = load(signed(k), size)
                elif mode == bpf.IND:
                    a = load(x + signed(k), size)
                elif mode == bpf.MEM:
                    a = memory[k]
                else:
                    a = k
            elif cls == bpf.LDX:
                mode = ins.code & 0xE0
                if mode == bpf.MSH:
                    x = (load(signed(k), 1) & 0x0F) * 4
                elif mode == bpf.MEM:
                    x = memory[k]
                else:
                    x = k
            elif cls == bpf.ST:
                memory[k] = a
            elif cls == bpf.ALU:
                operand = x if ins.code & bpf.SRC_X else k
                op = ins.code & 0xF0
                if op == bpf.ADD:
                    a = (a + operand) & 0xFFFFFFFF
                elif op == bpf.AND:
                    a &= operand
                elif op == bpf.LSH:
                    a = (a << operand) & 0xFFFFFFFF
                elif op == bpf.RSH:
                    a >>= operand
                elif op == bpf.MUL:
                    a = (a * operand) & 0xFFFFFFFF
                elif op == bpf.XOR:
                    a ^= operand
                else:
                    raise AssertionError(f"ALU op {op:#x} not modelled")
            elif cls == bpf.JMP:
                operand = x if ins.code & bpf.SRC_X else k
                op = ins.code & 0xF0
                if op == bpf.JA:
                    pc += k
                    continue
                taken = a == operand if op == bpf.JEQ else bool(a & operand)
                pc += ins.jt if taken else ins.jf
            elif cls == bpf.RET:
                return a if ins.code & bpf.RET_A else k
            elif cls == bpf.MISC:
                x = a
    except _OutOfBounds:
        return 0


def tcp4(flags: str = "A", payload: bytes = b"", sport: int = 40000, dport: int = 80) -> bytes:
    return bytes(
        IP(src="198.18.0.1", dst="198.18.0.2")
        / TCP(sport=sport, dport=dport, flags=flags)
        / Raw(payload)
    )


def tcp6(
    flags: str = "A", payload: bytes = b"", *extensions: Packet, sport: int = 40000, dport: int = 80
) -> bytes:
    packet: Any = IPv6(src="fd00:7a9::1", dst="fd00:7a9::2")
    for extension in extensions:
        packet = packet / extension
    return bytes(packet / TCP(sport=sport, dport=dport, flags=flags) / Raw(payload))


PORTS = [80, 8080]
PROGRAM = bpf.tcp_filter(PORTS, loopback_ifindexes=[1])


@pytest.mark.parametrize("build", [tcp4, tcp6])
@pytest.mark.parametrize(
    ("flags", "payload", "passes"),
    [
        ("S", b"", True),
        ("SA", b"", True),
        ("FA", b"", True),
        ("R", b"", True),
        ("RA", b"", True),
        ("PA", b"GET /", True),
        ("A", b"x", True),
        ("A", b"", False),
        ("", b"", False),
    ],
)
def test_segments_that_matter_pass_bare_acks_do_not(
    build: Any, flags: str, payload: bytes, passes: bool
) -> None:
    for sport, dport in [(40000, 80), (80, 40000), (8080, 1234), (1234, 8080)]:
        verdict = run(PROGRAM, build(flags, payload, sport=sport, dport=dport))
        assert (verdict > 0) is passes, (flags, payload, sport, dport)


def test_accepted_packets_are_kept_whole() -> None:
    assert run(PROGRAM, tcp4("PA", b"x" * 60000)) == 0xFFFFFFFF


@pytest.mark.parametrize("build", [tcp4, tcp6])
def test_other_ports_are_dropped(build: Any) -> None:
    assert run(PROGRAM, build("S", b"", sport=40000, dport=81)) == 0
    assert run(PROGRAM, build("PA", b"data", sport=443, dport=40000)) == 0


def test_tcp_options_do_not_count_as_payload() -> None:
    packet = bytes(
        IP(src="198.18.0.1", dst="198.18.0.2")
        / TCP(sport=1, dport=80, flags="A", options=[("Timestamp", (1, 2)), ("NOP", None)] * 2)
    )
    assert run(PROGRAM, packet) == 0
    options_and_data = bytes(
        IP(src="198.18.0.1", dst="198.18.0.2")
        / TCP(sport=1, dport=80, flags="A", options=[("Timestamp", (1, 2))])
        / Raw(b"d")
    )
    assert run(PROGRAM, options_and_data) > 0


def test_ipv4_options_shift_the_tcp_header() -> None:
    packet = bytes(
        IP(src="198.18.0.1", dst="198.18.0.2", options=[b"\x01\x01\x01\x00"])
        / TCP(sport=1, dport=80, flags="A")
    )
    assert run(PROGRAM, packet) == 0
    packet = bytes(
        IP(src="198.18.0.1", dst="198.18.0.2", options=[b"\x01\x01\x01\x00"])
        / TCP(sport=1, dport=80, flags="S")
    )
    assert run(PROGRAM, packet) > 0


def test_ethernet_padding_is_not_payload() -> None:
    assert run(PROGRAM, tcp4("A") + b"\x00" * 6) == 0


def test_offloaded_packets_with_zero_length_pass() -> None:
    packet = bytearray(tcp4("A", b"x" * 3000))
    packet[2:4] = b"\x00\x00"
    assert run(PROGRAM, bytes(packet)) > 0


@pytest.mark.parametrize(
    "extensions",
    [
        [IPv6ExtHdrHopByHop()],
        [IPv6ExtHdrRouting()],
        [IPv6ExtHdrDestOpt()],
        [IPv6ExtHdrHopByHop(), IPv6ExtHdrRouting(), IPv6ExtHdrDestOpt()],
    ],
)
def test_ipv6_extension_headers_are_stepped_over(extensions: list[Packet]) -> None:
    assert run(PROGRAM, tcp6("PA", b"data", *extensions)) > 0
    assert run(PROGRAM, tcp6("A", b"", *extensions)) == 0
    assert run(PROGRAM, tcp6("S", b"", *extensions, dport=9)) == 0


def test_long_ipv6_extension_chains_are_dropped() -> None:
    assert run(PROGRAM, tcp6("S", b"", *[IPv6ExtHdrDestOpt()] * 4)) == 0


def test_fragments_are_dropped() -> None:
    first = bytes(
        IP(src="198.18.0.1", dst="198.18.0.2", flags="MF") / TCP(sport=1, dport=80, flags="S")
    )
    later = bytes(IP(src="198.18.0.1", dst="198.18.0.2", frag=10, proto=6) / Raw(b"x" * 40))
    assert run(PROGRAM, first) == 0
    assert run(PROGRAM, later) == 0
    assert run(PROGRAM, tcp6("S", b"", IPv6ExtHdrFragment())) == 0
    dont_fragment = bytes(
        IP(src="198.18.0.1", dst="198.18.0.2", flags="DF") / TCP(sport=1, dport=80, flags="S")
    )
    assert run(PROGRAM, dont_fragment) > 0


def test_other_protocols_and_garbage_are_dropped() -> None:
    assert run(PROGRAM, bytes(IP() / UDP(sport=80, dport=80) / Raw(b"x" * 20))) == 0
    assert run(PROGRAM, bytes(IPv6() / UDP(sport=80, dport=80) / Raw(b"x" * 20))) == 0
    assert run(PROGRAM, b"") == 0
    assert run(PROGRAM, b"\x45") == 0
    assert run(PROGRAM, b"\x00" * 60) == 0
    assert run(PROGRAM, tcp4("S")[:30]) == 0


def test_outgoing_copies_are_dropped_on_loopback_only() -> None:
    segment = tcp4("PA", b"data")
    assert run(PROGRAM, segment, pkttype=bpf.PACKET_OUTGOING, ifindex=1) == 0
    assert run(PROGRAM, segment, pkttype=PACKET_HOST, ifindex=1) > 0
    assert run(PROGRAM, segment, pkttype=bpf.PACKET_OUTGOING, ifindex=2) > 0


def test_no_ports_means_every_port() -> None:
    program = bpf.tcp_filter([])
    assert run(program, tcp4("S", dport=12345)) > 0
    assert run(program, tcp6("PA", b"x", sport=5, dport=6)) > 0
    assert run(program, tcp4("A", dport=12345)) == 0


def test_many_ports() -> None:
    ports = list(range(1000, 1000 + bpf.MAX_PORTS))
    program = bpf.tcp_filter(ports, [1])
    for port in (ports[0], ports[50], ports[-1]):
        assert run(program, tcp4("S", dport=port)) > 0
        assert run(program, tcp6("S", sport=port)) > 0
    assert run(program, tcp4("S", dport=999)) == 0
    with pytest.raises(UserError, match="at most"):
        bpf.tcp_filter(list(range(1, bpf.MAX_PORTS + 2)))


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_out_of_range_ports_are_a_user_error(port: int) -> None:
    with pytest.raises(UserError, match="out of range"):
        bpf.tcp_filter([port])


def test_packed_program_is_an_array_of_sock_filter() -> None:
    packed = bpf.pack(PROGRAM)
    assert len(packed) == 8 * len(PROGRAM)
    assert struct.unpack_from("=HBBI", packed, 8 * (len(PROGRAM) - 1)) == (bpf.RET, 0, 0, 0)


@pytest.mark.parametrize("build", [tcp4, tcp6])
def test_fanout_hash_is_the_same_both_ways(build: Any) -> None:
    program = bpf.flow_hash()
    hashes = set()
    for client_port in range(40000, 40128, 2):  # connect() picks even ports
        forth = run(program, build("PA", b"x", sport=client_port, dport=8080))
        back = run(program, build("A", b"", sport=8080, dport=client_port))
        assert forth == back
        hashes.add(forth % 2)
    assert hashes == {0, 1}


def test_fanout_hash_of_other_packets_is_zero() -> None:
    assert run(bpf.flow_hash(), bytes(IP() / UDP(sport=5, dport=6))) == 0
    assert run(bpf.flow_hash(), tcp6("S", b"", IPv6ExtHdrHopByHop())) == 0
