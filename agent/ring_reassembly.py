"""Reassembly straight from the capture ring: one loop reads a ring block's frames and feeds
the reassembler's in-order fast path, with no Frame in between (sans-IO: bytes in, events out).

Under a flood nearly every frame is in-order data of a connection already followed. Read by
agent.capture.frames_of_block and fed by agent.tcp.Reassembler.feed_frames, each such frame is
built into a Frame tuple, appended to a list, iterated and unpacked again: about 60 ns of the
1.1 us a frame costs (bench/bench_hot_path.py). :meth:`RingReassembler.feed_block` is those
two loops made one. It repeats both, line for line where it can: the frame parsing of
frames_of_block (same refusals, same timestamps) and the loop body of feed_frames (same
events, the same runs joined). tests/unit/test_ring_reassembly.py holds it to exactly what the
two loops give, block by block, on drawn traffic; a change to either loop belongs here too.
"""

from __future__ import annotations

from collections.abc import Callable
from mmap import mmap

from agent import tcp
from agent.byte_streams import SEQ_MASK, UNSYNCED
from agent.capture import _FRAME, _IPV4_NO_OPTIONS, _IPV4_TCP, _PAYLOAD_AT, PACKET_OUTGOING
from agent.events import AnyEvent, DataReceived
from agent.packet import ACK, PROTO_TCP, frame_of, parse_ip, segment_of
from agent.tcp import Reassembler, _Direction


class RingReassembler(Reassembler):
    """A Reassembler that also reads capture ring blocks itself (agent.capture.BlockParser);
    ``segments`` counts the frames it took as segments, as len() of frames_of_block's list."""

    def __init__(self, server_ports: frozenset[int], limits: tcp.Limits | None = None) -> None:
        super().__init__(server_ports, limits)
        self.segments = 0

    def feed_block(
        self,
        ring: mmap | bytes,
        offset: int,
        count: int,
        interface_name: Callable[[int], str],
        loopbacks: frozenset[int],
        out: list[AnyEvent],
    ) -> int:
        """Append to ``out`` the events of the ``count`` frames of a ring block, the first at
        ``offset``: what ``feed_frames`` makes of what ``frames_of_block`` reads there. Returns
        the frames the ring cut short, as frames_of_block does."""
        # -- as in frames_of_block --
        unpack_frame = _FRAME.unpack_from
        unpack_ipv4_tcp = _IPV4_TCP.unpack_from
        payload_offsets = _PAYLOAD_AT
        truncated = 0
        last_ifindex = -1
        name = ""
        loopback = False
        last_seconds = -1
        whole_secs = 0.0
        # -- as in feed_frames --
        append = out.append
        get = self._directions.get
        move_to_end = self._live.move_to_end
        control = tcp._CONTROL
        join_up_to = tcp._JOIN_UP_TO  # read here, as tests change it
        run_half: _Direction | None = None
        run = tcp._NO_EVENT
        run_pieces: list[bytes] | None = None
        run_size = 0
        fed = 0
        segments = 0
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
                truncated += 1
                continue
            if seconds != last_seconds:
                whole_secs = float(seconds)
                last_seconds = seconds
            # The common frame, IPv4 without options, is read in place; any other goes through
            # parse_ip (snaplen under 40 too: its version byte is then read as no such frame).
            if snaplen >= 40:
                version_ihl, total, fragment_proto, key, seq, ack, data_offset, flags = (
                    unpack_ipv4_tcp(ring, start)
                )
            else:
                version_ihl = 0
            if version_ihl == _IPV4_NO_OPTIONS:
                if not total:
                    total = snaplen
                payload_at = payload_offsets[data_offset]
                if not (
                    fragment_proto & 0x3FFF00FF == PROTO_TCP and payload_at <= total <= snaplen
                ):
                    continue
                payload = ring[start + payload_at : start + total]
                ts = whole_secs + nanos * 1e-9
            else:
                segment = parse_ip(ring, start, start + snaplen)
                if segment is None:
                    continue
                ts, _, key, seq, ack, flags, payload = frame_of(
                    whole_secs + nanos * 1e-9, name, segment
                )
            # -- the frame is a segment: from here on, the body of feed_frames' loop --
            segments += 1
            size = len(payload)
            fed += size
            half = get(key)
            if half is None or flags & control or half.closed:
                out += self._feed_slow(segment_of(key, seq, ack, flags, payload), half, ts, name)
                run_half = None
                continue
            conn = half.conn
            conn.last_seen = ts
            move_to_end(conn.id)
            peer = half.peer
            if flags & ACK and ack != peer.next_seq and peer.next_seq != UNSYNCED:
                before = len(out)
                self._streams.acknowledged(peer, ack, ts, out)
                if len(out) != before:
                    run_half = None
            if not size:
                continue
            if seq != half.next_seq or half.starts or half.fin_at is not None:
                before = len(out)
                self._streams.receive(half, seq, payload, ts, out)
                if len(out) != before:
                    run_half = None
                continue
            half.next_seq = (seq + size) & SEQ_MASK
            half.pos += size
            if half is run_half and run_size < join_up_to:
                if run_pieces is None:
                    run_pieces = [run.data, payload]
                else:
                    run_pieces.append(payload)
                run_size += size
                continue
            if run_pieces is not None:
                run.data = b"".join(run_pieces)
                run_pieces = None
            run = DataReceived(ts=ts, conn=conn.id, direction=half.direction, data=payload)
            append(run)
            run_half, run_size = half, size
        if run_pieces is not None:
            run.data = b"".join(run_pieces)
        self.payload_bytes += fed
        self.segments += segments
        return truncated
