"""The in-kernel classic BPF filter: only TCP segments that matter reach user space.

Built here rather than compiled by libpcap so that the agent image needs no libpcap. The
program runs on a cooked (``SOCK_DGRAM``) packet socket, where the kernel shows the filter the
packet from its IP header on, on every link type. It accepts a TCP segment over IPv4 or IPv6
(stepping over hop-by-hop, routing and destination-options headers) whose source or
destination port is one of ``ports`` and that carries SYN, FIN, RST or payload: bare ACKs, the
bulk of a transfer's reverse direction, never leave the kernel. It also drops the outgoing copy
of every packet on loopback interfaces, where each packet is otherwise seen twice.
IP fragments are dropped (see agent/packet.py).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from agent.errors import UserError

# Opcode parts (linux/filter.h).
LD, LDX, ST, ALU, JMP, RET, MISC = 0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x07
RET_A = 0x10
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, MSH = 0x00, 0x20, 0x40, 0x60, 0xA0
ADD, MUL, AND, LSH, RSH, XOR = 0x00, 0x20, 0x50, 0x60, 0x70, 0xA0
JA, JEQ, JSET = 0x00, 0x10, 0x40
SRC_K, SRC_X = 0x00, 0x08
TAX = 0x00

# Ancillary loads: negative offsets read skb metadata instead of packet bytes.
SKF_AD_OFF = -0x1000
SKF_NET_OFF = -0x100000  # loads relative to the network header, wherever skb->data points
SKF_AD_PKTTYPE = 4
SKF_AD_IFINDEX = 8
PACKET_OUTGOING = 4

ACCEPT_ALL = 0xFFFFFFFF  # snap length: the whole packet
MAX_PORTS = 100  # keeps every conditional jump within the 255 instructions it can reach
MAX_IPV6_EXTENSIONS = 3
TCP_FLAGS_THAT_MATTER = 0x07  # FIN | SYN | RST

_SOCK_FILTER = struct.Struct("=HBBI")


@dataclass(frozen=True)
class Instruction:
    """One ``struct sock_filter``."""

    code: int
    jt: int
    jf: int
    k: int


class _Assembler:
    """Collects instructions whose jumps name labels, then resolves them to offsets."""

    def __init__(self) -> None:
        self._lines: list[tuple[int, str | int, str | int, int]] = []
        self._labels: dict[str, int] = {}

    def op(self, code: int, k: int = 0) -> None:
        self._lines.append((code, 0, 0, k & 0xFFFFFFFF))

    def jump(self, code: int, k: int, true: str | int, false: str | int) -> None:
        """Conditional jump; a label name or 0 (fall through) for each branch."""
        self._lines.append((code, true, false, k & 0xFFFFFFFF))

    def label(self, name: str) -> None:
        self._labels[name] = len(self._lines)

    def assemble(self) -> list[Instruction]:
        program = []
        for index, (code, true, false, k) in enumerate(self._lines):
            jt, jf = self._offset(index, true), self._offset(index, false)
            program.append(Instruction(code, jt, jf, k))
        return program

    def _offset(self, index: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        offset = self._labels[target] - index - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"jump to {target} out of reach ({offset})")
        return offset


def tcp_filter(ports: Sequence[int], loopback_ifindexes: Sequence[int] = ()) -> list[Instruction]:
    """The program for ``ports`` (empty: every port); outgoing frames on the interfaces in
    ``loopback_ifindexes`` are dropped."""
    ports = sorted(set(ports))
    if len(ports) > MAX_PORTS:
        raise UserError(f"podtap can watch at most {MAX_PORTS} ports at once.")
    for port in ports:
        if not 1 <= port <= 65535:
            raise UserError(f"Port {port} is out of range; ports are 1 to 65535.")
    asm = _Assembler()
    if loopback_ifindexes:
        asm.op(LD | W | ABS, SKF_AD_OFF + SKF_AD_PKTTYPE)
        asm.jump(JMP | JEQ | SRC_K, PACKET_OUTGOING, 0, "ip")
        asm.op(LD | W | ABS, SKF_AD_OFF + SKF_AD_IFINDEX)
        for ifindex in loopback_ifindexes:
            asm.jump(JMP | JEQ | SRC_K, ifindex, "drop", 0)
    asm.label("ip")
    asm.op(LD | B | ABS, 0)
    asm.op(ALU | AND | SRC_K, 0xF0)
    asm.jump(JMP | JEQ | SRC_K, 0x40, "ipv4", 0)
    asm.jump(JMP | JEQ | SRC_K, 0x60, "ipv6", "drop")
    asm.label("drop")
    asm.op(RET | SRC_K, 0)

    asm.label("ipv4")
    asm.op(LD | B | ABS, 9)
    asm.jump(JMP | JEQ | SRC_K, 6, 0, "drop4")
    asm.op(LD | H | ABS, 6)
    asm.jump(JMP | JSET | SRC_K, 0x3FFF, "drop4", 0)  # MF flag or a fragment offset
    asm.op(LDX | B | MSH, 0)  # X = IPv4 header length = TCP header offset
    _match_ports(asm, ports, "ipv4")
    asm.op(LD | H | ABS, 2)  # total length (0 when offload built a >64 KiB packet: passes)
    asm.op(LDX | MEM, 0)
    asm.jump(JMP | JEQ | SRC_X, 0, "drop4", "accept4")
    asm.label("accept4")
    asm.op(RET | SRC_K, ACCEPT_ALL)
    asm.label("drop4")
    asm.op(RET | SRC_K, 0)

    asm.label("ipv6")
    asm.op(LDX | IMM, 40)
    asm.op(LD | B | ABS, 6)  # next header
    for hop in range(MAX_IPV6_EXTENSIONS):
        asm.jump(JMP | JEQ | SRC_K, 6, "tcp6", 0)
        asm.jump(JMP | JEQ | SRC_K, 0, f"ext{hop}", 0)
        asm.jump(JMP | JEQ | SRC_K, 43, f"ext{hop}", 0)
        asm.jump(JMP | JEQ | SRC_K, 60, f"ext{hop}", "drop6")
        asm.label(f"ext{hop}")
        asm.op(LD | B | IND, 0)  # the extension's own next header
        asm.op(ST, 1)
        asm.op(LD | B | IND, 1)  # its length, in 8-octet units after the first 8
        asm.op(ALU | ADD | SRC_K, 1)
        asm.op(ALU | LSH | SRC_K, 3)
        asm.op(ALU | ADD | SRC_X, 0)
        asm.op(MISC | TAX)
        asm.op(LD | MEM, 1)
    asm.jump(JMP | JEQ | SRC_K, 6, "tcp6", "drop6")
    asm.label("tcp6")
    _match_ports(asm, ports, "ipv6")
    asm.op(LD | H | ABS, 4)  # payload length (0 for jumbograms and offloaded packets: passes)
    asm.op(ALU | ADD | SRC_K, 40)
    asm.op(LDX | MEM, 0)
    asm.jump(JMP | JEQ | SRC_X, 0, "drop6", "accept6")
    asm.label("accept6")
    asm.op(RET | SRC_K, ACCEPT_ALL)
    asm.label("drop6")
    asm.op(RET | SRC_K, 0)
    return asm.assemble()


def _match_ports(asm: _Assembler, ports: Sequence[int], family: str) -> None:
    """With X at the TCP header: drop unless a port matches; accept on SYN/FIN/RST; else
    leave in M[0] the offset of the payload (IP header + extensions + TCP header)."""
    drop, accept, matched = f"drop{family[-1]}", f"accept{family[-1]}", f"ports_{family}"
    if ports:
        asm.op(LD | H | IND, 0)
        for port in ports:
            asm.jump(JMP | JEQ | SRC_K, port, matched, 0)
        asm.op(LD | H | IND, 2)
        for port in ports[:-1]:
            asm.jump(JMP | JEQ | SRC_K, port, matched, 0)
        asm.jump(JMP | JEQ | SRC_K, ports[-1], matched, drop)
    asm.label(matched)
    asm.op(LD | B | IND, 13)
    asm.jump(JMP | JSET | SRC_K, TCP_FLAGS_THAT_MATTER, accept, 0)
    asm.op(LD | B | IND, 12)  # data offset, in 32-bit words, in the high nibble
    asm.op(ALU | AND | SRC_K, 0xF0)
    asm.op(ALU | RSH | SRC_K, 2)
    asm.op(ALU | ADD | SRC_X, 0)
    asm.op(ST, 0)


def flow_hash() -> list[Instruction]:
    """A fanout program (PACKET_FANOUT_CBPF) that sends both directions of a TCP connection to
    the same group member: it returns a mix of source port XOR destination port, which stays
    the same when the two ends swap (the kernel's own flow hash may not: a local sender stamps
    its socket's random hash on outgoing packets). Loads are relative to the network header
    because fanout runs before the kernel strips the link header from outgoing frames. IPv6
    extension headers are not walked here: such packets all go to member 0."""
    asm = _Assembler()
    asm.op(LD | B | ABS, SKF_NET_OFF)
    asm.op(ALU | AND | SRC_K, 0xF0)
    asm.jump(JMP | JEQ | SRC_K, 0x40, "ipv4", 0)
    asm.jump(JMP | JEQ | SRC_K, 0x60, "ipv6", "other")
    asm.label("ipv4")
    asm.op(LD | B | ABS, SKF_NET_OFF + 9)
    asm.jump(JMP | JEQ | SRC_K, 6, 0, "other")
    asm.op(LD | B | ABS, SKF_NET_OFF)
    asm.op(ALU | AND | SRC_K, 0x0F)
    asm.op(ALU | LSH | SRC_K, 2)
    asm.op(MISC | TAX)
    _xor_ports(asm)
    asm.label("ipv6")
    asm.op(LD | B | ABS, SKF_NET_OFF + 6)
    asm.jump(JMP | JEQ | SRC_K, 6, 0, "other")
    asm.op(LDX | IMM, 40)
    _xor_ports(asm)
    asm.label("other")
    asm.op(RET | SRC_K, 0)
    return asm.assemble()


def _xor_ports(asm: _Assembler) -> None:
    asm.op(LD | H | IND, SKF_NET_OFF)
    asm.op(ST, 0)
    asm.op(LD | H | IND, SKF_NET_OFF + 2)
    asm.op(LDX | MEM, 0)
    asm.op(ALU | XOR | SRC_X, 0)
    # Spread the bits: Linux picks even ephemeral ports for connect(), so the XOR of two
    # ports is mostly even, and the kernel takes the result modulo the group size.
    asm.op(ALU | MUL | SRC_K, 0x9E3779B1)
    asm.op(ALU | RSH | SRC_K, 16)
    asm.op(RET | RET_A)


def pack(program: Sequence[Instruction]) -> bytes:
    """The program as the array of ``struct sock_filter`` the kernel reads."""
    return b"".join(_SOCK_FILTER.pack(i.code, i.jt, i.jf, i.k) for i in program)
