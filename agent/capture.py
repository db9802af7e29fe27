"""Capturing the TCP segments of a target's namespace: an AF_PACKET socket with a TPACKET_V3 ring.

The socket is created inside the target namespace (by agent.netns) and read from anywhere: it
keeps its namespace. It is cooked (``SOCK_DGRAM``): frames start at the IP header on every link
type, which is what agent.packet and agent.bpf expect. It is bound to every interface, and the
in-kernel filter (agent.bpf) lets through only segments of the requested ports that carry SYN,
FIN, RST or payload.

Why a ring rather than ``recvfrom``: the kernel writes frames into memory shared with podtap and
hands over whole blocks, so one poll() serves thousands of frames, each with its capture
timestamp, interface index and packet type in the frame header; a plain receive loop pays a
system call (and an interface-name lookup) per frame, about half the rate in pure Python
(bench/bench_capture.py measures both).

Timestamps are the kernel's, taken when the packet reached the socket (real-time clock, in
the ring's frame header), so they do not depend on how late podtap reads the ring.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import select
import socket
import struct
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TypeAlias, TypeVar

from agent import bpf
from agent.errors import UserError
from agent.netns import NamespaceRef, check_capabilities, is_own_namespace, run_in_namespace
from agent.packet import PROTO_TCP, Frame, Segment, frame_of, parse_ip, segment_of

ETH_P_ALL = 0x0003
SOL_PACKET = 263
SO_ATTACH_FILTER = 26
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_FANOUT_DATA = 22
PACKET_FANOUT_CBPF = 6
PACKET_FANOUT_FLAG_UNIQUEID = 0x2000
NEW_FANOUT_GROUP = -1
TPACKET_V3 = 2
TP_STATUS_USER = 1
PACKET_OUTGOING = 4

# struct tpacket_block_desc: block_status, num_pkts, offset_to_first_pkt at offset 8.
_BLOCK = struct.Struct("=8xIII")
_BLOCK_STATUS_OFFSET = 8
# struct tpacket3_hdr (48 bytes) then struct sockaddr_ll: next offset, seconds, nanoseconds,
# captured length, wire length, offset of the IP header, interface index, packet type.
_FRAME = struct.Struct("=IIIII6xH20x4xi2xB")
_STATS = struct.Struct("=III")  # struct tpacket_stats_v3: packets, drops, freeze count
_REQ3 = struct.Struct("=7I")  # struct tpacket_req3
_FPROG = struct.Struct("@HP")  # struct sock_fprog (native alignment): length, pointer

# struct sockaddr_ll: family, protocol (network order), ifindex, and fields bind ignores.
_SOCKADDR_LL = struct.Struct("=HHi12x")
# An IPv4 header without options followed by the fixed part of a TCP header: nearly every
# frame, read in one call, the addresses and ports as one flow key (see frames_of_block).
# Flags and fragment offset, time-to-live and protocol come as one number.
_IPV4_TCP = struct.Struct("!BxHxxIxx12sIIBB")
_IPV4_NO_OPTIONS = 0x45
# Where the TCP payload starts in such a frame, by the byte that holds the TCP data offset:
# one lookup instead of shifts and masks. An offset under 5 words (a header shorter than
# TCP's 20 bytes) maps past any length, so that the length test refuses it too.
_PAYLOAD_AT = tuple(20 + (byte >> 4) * 4 if byte >> 4 >= 5 else 1 << 31 for byte in range(256))
_libc = ctypes.CDLL(None, use_errno=True)

Captured = tuple[float, str, Segment]

T = TypeVar("T")
BlockParser: TypeAlias = Callable[
    [mmap.mmap | bytes, int, int, Callable[[int], str], frozenset[int], list[T]], int
]
"""Reads the frames of a ring block into a list: (ring, offset of the first frame, frames,
interface name by index, loopback indexes, out) -> frames cut short. See frames_of_block."""

DEFAULT_BLOCK_COUNT = 64


class Capture:
    """Segments of ``ports`` on every interface of ``namespace`` (all ports if empty).

    Use from one thread (the capture loop), and close it from that thread or once it has
    stopped reading; ``interfaces`` lists the names seen at open.
    ``block_size`` must hold the largest frame (offloaded frames reach 64 KiB); the ring holds
    ``block_size * block_count`` bytes (64 MiB by default: about 200k small frames, or two
    seconds of a 100k frames/s flood while the reader is starved of CPU) of frames waiting to
    be read; a block is handed over when full or ``block_timeout_ms`` after its first frame,
    which bounds the latency added.

    To spread capture over several processes, open one Capture per process with the same
    ``fanout_group`` (0-65535, unique per agent): the kernel then gives each member its share
    of the connections, both directions of a connection to the same member (agent.bpf.flow_hash).
    ``NEW_FANOUT_GROUP`` has the kernel pick an id no other socket of the namespace uses (two
    agents on one target must never split each other's traffic); ``fanout_group`` then holds
    it, for the other members to join.
    """

    def __init__(
        self,
        namespace: NamespaceRef,
        ports: Sequence[int],
        *,
        block_size: int = 1 << 20,
        block_count: int = DEFAULT_BLOCK_COUNT,
        block_timeout_ms: int = 10,
        fanout_group: int | None = None,
    ) -> None:
        self.namespace = namespace
        self.ports = tuple(sorted(set(ports)))
        self.frames = 0  # frames read from the ring
        self.blocks = 0  # blocks read from the ring (how far behind a reader is, per read)
        self.truncated = 0  # frames the ring had to cut short (lost as whole segments)
        self._packets = 0
        self._drops = 0
        self._block_size = block_size
        self._block_count = block_count
        self._block = 0
        # Both missing capabilities in one sentence, before the first one trips.
        check_capabilities(enter=not is_own_namespace(namespace))
        index_names = run_in_namespace(namespace, socket.if_nameindex)
        self._names = {index: name for index, name in index_names}
        self.interfaces = [name for _, name in index_names]
        self._loopbacks = frozenset(i for i, name in index_names if name == "lo")
        program = bpf.tcp_filter(self.ports, sorted(self._loopbacks))
        self._socket = run_in_namespace(
            namespace,
            lambda: _open_socket(program, block_size, block_count, block_timeout_ms),
        )
        self.fanout_group = fanout_group
        if fanout_group is not None:
            try:
                self.fanout_group = join_fanout(self._socket, fanout_group)
            except BaseException:
                self._socket.close()
                raise
        try:
            self._ring = mmap.mmap(
                self._socket.fileno(),
                block_size * block_count,
                mmap.MAP_SHARED,
                mmap.PROT_READ | mmap.PROT_WRITE,
            )
        except BaseException:
            self._socket.close()
            raise
        self._poll = select.poll()
        self._poll.register(self._socket.fileno(), select.POLLIN | select.POLLERR)

    def fileno(self) -> int:
        return self._socket.fileno()

    @property
    def ring_bytes(self) -> int:
        """The ring's size: all of it is mapped into this process while the capture is open."""
        return self._block_size * self._block_count

    def read_frames(self, timeout: float, max_blocks: int = 8) -> list[Frame]:
        """The segments of the ring's ready blocks (at most ``max_blocks``, so that the caller
        gets control back regularly), waiting up to ``timeout`` seconds for one to be ready."""
        return self.read_blocks(timeout, frames_of_block, max_blocks)

    def read_blocks(self, timeout: float, parse: BlockParser[T], max_blocks: int = 8) -> list[T]:
        """What ``parse`` makes of the ring's ready blocks, as :meth:`read_frames` reads them;
        each block goes back to the kernel once parsed. ``parse`` has the signature of
        :func:`frames_of_block` (agent.ring_reassembly reassembles a block as it reads it)."""
        ring = self._ring
        if not _BLOCK.unpack_from(ring, self._block * self._block_size)[0] & TP_STATUS_USER:
            self._poll.poll(max(0, int(timeout * 1000)))
        out: list[T] = []
        for _ in range(max_blocks):
            base = self._block * self._block_size
            status, count, first = _BLOCK.unpack_from(ring, base)
            if not status & TP_STATUS_USER:
                break
            self.frames += count
            self.blocks += 1
            self.truncated += parse(
                ring, base + first, count, self._interface_name, self._loopbacks, out
            )
            struct.pack_into("=I", ring, base + _BLOCK_STATUS_OFFSET, 0)  # back to the kernel
            self._block = (self._block + 1) % self._block_count
        return out

    def read_batch(self, timeout: float, max_blocks: int = 8) -> list[Captured]:
        """What :meth:`read_frames` reads, as Segments: slower, for readers that want them."""
        return [
            (ts, name, segment_of(key, seq, ack, flags, payload))
            for ts, name, key, seq, ack, flags, payload in self.read_frames(timeout, max_blocks)
        ]

    def _interface_name(self, ifindex: int) -> str:
        """The name of interface ``ifindex``; those created after the capture started are
        looked up once each."""
        name = self._names.get(ifindex)
        if name is not None:
            return name
        try:
            for index, name in run_in_namespace(self.namespace, socket.if_nameindex):
                self._names.setdefault(index, name)
        except (OSError, UserError):
            pass
        return self._names.setdefault(ifindex, f"if{ifindex}")

    def kernel_counters(self) -> tuple[int, int]:
        """(packets that passed the filter, of them dropped for want of ring space), cumulative
        since open. The kernel resets its counters on every read, hence the running sums."""
        packets, drops, _ = _STATS.unpack(
            self._socket.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        )
        self._packets += packets
        self._drops += drops
        return self._packets, self._drops

    def waiting(self) -> int:
        """Frames in the ring not read yet, as of the last :meth:`kernel_counters` (the kernel
        counts dropped frames among those it passed)."""
        return max(0, self._packets - self._drops - self.frames)

    def close(self) -> None:
        if self._socket.fileno() >= 0:
            self._poll.unregister(self._socket.fileno())
            self._ring.close()
            self._socket.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def frames_of_block(
    ring: mmap.mmap | bytes,
    offset: int,
    count: int,
    interface_name: Callable[[int], str],
    loopbacks: frozenset[int],
    out: list[Frame],
) -> int:
    """Append to ``out`` the segments of the ``count`` frames of a ring block, the first at
    ``offset``; return how many the ring cut short (lost as whole segments). ``ring`` is the
    ring itself or bytes, whose slices are bytes (a payload is a copy, never a view).

    The common frame, IPv4 without options, is read here in one unpack that also yields its
    flow key; anything else goes to agent.packet.parse_ip, and both refuse the same frames.
    Loopback's outgoing copies are skipped: the filter already drops them, this keeps them out
    should an interface be renamed or a filter-less socket be used. agent.ring_reassembly
    repeats this loop: a change here belongs there too."""
    unpack_frame = _FRAME.unpack_from
    unpack_ipv4_tcp = _IPV4_TCP.unpack_from
    payload_offsets = _PAYLOAD_AT
    append = out.append
    truncated = 0
    # What is worked out once per run of frames from one interface, or within one second,
    # rather than per frame: the interface's name and whether it is a loopback; the second as
    # a float, so that the timestamp takes one float addition (float(s) + n * 1e-9 is exactly
    # what s + n * 1e-9 computes, for less).
    last_ifindex = -1
    name = ""
    loopback = False
    last_seconds = -1
    whole_secs = 0.0
    for _ in range(count):
        following, seconds, nanos, snaplen, length, network, ifindex, pkttype = unpack_frame(
            ring, offset
        )
        start = offset + network
        offset += following
        if ifindex != last_ifindex:
            name = interface_name(ifindex)
            loopback = ifindex in loopbacks
            last_ifindex = ifindex
        if loopback and pkttype == PACKET_OUTGOING:
            continue
        if snaplen < length:
            # Lost whole, whatever its IP header says: an offloaded super-packet's says 0, and
            # its captured part would read as a shorter segment with no sign of what is missing.
            truncated += 1
            continue
        if seconds != last_seconds:
            whole_secs = float(seconds)
            last_seconds = seconds
        if snaplen >= 40:
            version_ihl, total, fragment_proto, key, seq, ack, data_offset, flags = unpack_ipv4_tcp(
                ring, start
            )
            if version_ihl == _IPV4_NO_OPTIONS:
                # The same refusals as parse_ip, in as few tests as they fit: not TCP or a
                # fragment (the time-to-live masked out); a length too short for the headers
                # (a TCP header under 20 bytes too, see _PAYLOAD_AT) or past the captured
                # bytes (zero: an offloaded super-packet, the captured length counts).
                if not total:
                    total = snaplen
                payload_at = payload_offsets[data_offset]
                if fragment_proto & 0x3FFF00FF == PROTO_TCP and payload_at <= total <= snaplen:
                    payload = ring[start + payload_at : start + total]
                    append((whole_secs + nanos * 1e-9, name, key, seq, ack, flags, payload))
                continue
        segment = parse_ip(ring, start, start + snaplen)
        if segment is not None:
            append(frame_of(whole_secs + nanos * 1e-9, name, segment))
    return truncated


def _open_socket(
    program: Sequence[bpf.Instruction], block_size: int, block_count: int, timeout_ms: int
) -> socket.socket:
    """A packet socket with filter and ring set up before it is bound (so that no unfiltered
    frame is ever queued), then bound to every interface of the current namespace."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
    except PermissionError:
        raise UserError(
            "podtap needs CAP_NET_RAW to capture traffic; run it with sudo or grant the capability."
        ) from None
    try:
        attach_filter(sock, program)
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        frame_size = 2048  # only a hint for TPACKET_V3: frames are packed by their real size
        request = _REQ3.pack(
            block_size,
            block_count,
            frame_size,
            block_size // frame_size * block_count,
            timeout_ms,
            0,
            0,
        )
        try:
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
        except OSError as error:
            if error.errno == errno.ENOMEM:
                raise UserError(
                    f"The kernel refused a {block_size * block_count >> 20} MiB capture ring; "
                    "free memory or ask for a smaller ring."
                ) from None
            raise
        bind_all_interfaces(sock)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_all_interfaces(sock: socket.socket) -> None:
    """Bind to ``ETH_P_ALL`` on interface index 0 (every interface). Python's own ``bind``
    insists on an interface name, hence the libc call."""
    address = _SOCKADDR_LL.pack(socket.AF_PACKET, socket.htons(ETH_P_ALL), 0)
    if _libc.bind(sock.fileno(), address, len(address)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"binding the capture socket: {os.strerror(code)}")


def join_fanout(sock: socket.socket, group: int) -> int:
    """Join fanout ``group`` (or a new one, for NEW_FANOUT_GROUP), spread by
    agent.bpf.flow_hash (the program belongs to the group; every member sets the same one).
    Returns the group's id."""
    if group == NEW_FANOUT_GROUP:
        mode = PACKET_FANOUT_CBPF | PACKET_FANOUT_FLAG_UNIQUEID
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, mode << 16)
        group = sock.getsockopt(SOL_PACKET, PACKET_FANOUT) & 0xFFFF
    else:
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, (group & 0xFFFF) | PACKET_FANOUT_CBPF << 16)
    _set_program(sock, SOL_PACKET, PACKET_FANOUT_DATA, bpf.flow_hash())
    return group


def attach_filter(sock: socket.socket, program: Sequence[bpf.Instruction]) -> None:
    _set_program(sock, socket.SOL_SOCKET, SO_ATTACH_FILTER, program)


def _set_program(
    sock: socket.socket, level: int, option: int, program: Sequence[bpf.Instruction]
) -> None:
    """Hand a classic BPF ``program`` to the kernel, which copies it: the buffer may go."""
    code = ctypes.create_string_buffer(bpf.pack(program))
    sock.setsockopt(level, option, _FPROG.pack(len(program), ctypes.addressof(code)))
