"""TCP reassembly (sans-IO): captured segments in, connection and byte-stream events out.

One :class:`Reassembler` follows every connection to or from the watched server ports and turns
the segments of both directions into ``ConnectionOpened``, ``DataReceived``, ``Gap`` and
``ConnectionClosed`` events, with ``seq=0`` (the journal numbers them) and ``ts`` the capture
time it was given. It never reads a clock: time only comes in through ``feed``/``expire``.

How it decides, in short:

- **Who is the server.** The sender of a SYN is the client (the sender of a SYN-ACK is the
  server). A connection first seen mid-stream is oriented by ``server_ports``; if both ports are
  watched, the lower one is taken as the server (ephemeral ports are high).
- **Positions.** Each direction counts stream bytes from 0 and converts 32-bit sequence numbers
  to that count through the signed distance to the next expected sequence number, so 2^32
  wraparound needs no special case. Out-of-order bytes wait in a sorted buffer; when bytes
  overlap, the first copy seen wins (that is what the receiving kernel keeps too).
- **Loss.** Bytes never seen become a ``Gap`` of their exact length, never zeros. A hole is
  declared lost when the peer acknowledges past it (the receiver got bytes the capture missed),
  when the connection closes (FIN from both sides, RST, idle expiry, eviction, shutdown), or when
  waiting for it would overrun a buffer bound (``buffer-limit`` / ``memory-limit``).
- **An acknowledged FIN not seen yet.** The capture may see a FIN's acknowledgement before the
  FIN (the two directions can come through different interfaces or CPUs). An acknowledgement
  exactly one past the bytes of a direction, with nothing of it buffered beyond, may cover a
  FIN, which takes a sequence number and no byte: that number is held, not reported. If the FIN
  turns up there, nothing was lost. It is a lost byte, reported as a 1-byte ``Gap``, as soon as
  anything shows it was not the FIN: data or a FIN beyond it, an acknowledgement past it, or the
  connection ending without that FIN (RST, idle expiry, eviction, shutdown).
- **Closing.** A connection closes once a FIN has been seen from each side (the final bare ACK
  is not waited for: the capture filter usually drops bare ACKs), or on RST. A closed 4-tuple is
  remembered for ``Limits.closed_linger`` seconds so that its late retransmissions are ignored
  instead of opening a phantom connection; a new SYN on it starts a new connection.
- **Joining mid-stream.** A segment with payload for an unknown 4-tuple opens a connection
  marked ``mid_stream``; each direction starts at its first byte seen. Segments without payload
  never open one.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from agent.events import (
    AnyEvent,
    CloseReason,
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    Direction,
    Gap,
    GapReason,
)
from agent.packet import ACK, FIN, RST, SYN, FlowKey, Frame, Segment, flow_key, frame_of, segment_of

_MASK = 0xFFFF_FFFF
_HALF = 0x8000_0000
_CONTROL = SYN | FIN | RST
_UNSYNCED = -1
# Consecutive in-order segments of one direction in a batch are delivered as one DataReceived
# until it holds this many bytes.
_JOIN_UP_TO = 64 * 1024
# A placeholder for "no run yet", so that the hot loop's variable never needs a None check.
_NO_EVENT = DataReceived(ts=0.0, conn=-1, direction="in", data=b"")


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep memory finite whatever the traffic does."""

    direction_buffer: int = 4 * 1024 * 1024
    """Out-of-order bytes one direction may hold while it waits for a hole to fill."""
    total_buffer: int = 256 * 1024 * 1024
    """Out-of-order bytes all connections together may hold."""
    max_connections: int = 100_000
    """Open connections followed at once; beyond, the idlest one is evicted."""
    idle_timeout: float = 300.0
    """Seconds without a segment after which ``expire`` closes a connection."""
    closed_linger: float = 60.0
    """Seconds a closed 4-tuple is remembered so that late segments of it are ignored."""


def _distance(seq: int, reference: int) -> int:
    """Signed distance from ``reference`` to ``seq`` in 32-bit sequence space."""
    delta = (seq - reference) & _MASK
    return delta - 0x1_0000_0000 if delta >= _HALF else delta


class _Direction:
    """One direction of a connection: where its stream stands and what waits out of order.

    ``pos`` counts the stream bytes accounted for (delivered or declared lost) and ``next_seq``
    is the sequence number of byte ``pos``. Buffered chunks never overlap, are sorted, and all
    start after ``pos``. ``held`` is the position of an acknowledged sequence number that may be
    the unseen FIN (see the module documentation); it means something only while it equals
    ``pos``, so moving ``pos`` on is enough to drop it."""

    __slots__ = (
        "buffered",
        "chunks",
        "conn",
        "direction",
        "fin_at",
        "held",
        "key",
        "next_seq",
        "peer",
        "pos",
        "starts",
    )

    def __init__(self, conn: _Connection, direction: Direction, key: FlowKey) -> None:
        self.conn = conn
        self.direction: Direction = direction
        self.key = key
        self.peer: _Direction = self
        self.next_seq = _UNSYNCED
        self.pos = 0
        self.starts: list[int] = []
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.fin_at: int | None = None
        self.held = -1

    def holds_unseen_fin(self) -> bool:
        return self.held == self.pos and self.fin_at is None

    def buffer_end(self) -> int:
        return self.starts[-1] + len(self.chunks[-1]) if self.starts else self.pos

    def finished(self) -> bool:
        return self.fin_at is not None and self.pos >= self.fin_at


class _Connection:
    __slots__ = ("client", "closed", "id", "last_seen", "server", "syn_seq")

    # Set by Reassembler._open right after construction: the directions need the connection.
    client: _Direction
    server: _Direction

    def __init__(self, conn_id: int, ts: float) -> None:
        self.id = conn_id
        self.last_seen = ts
        self.closed = False
        self.syn_seq = _UNSYNCED


class Reassembler:
    """Follows the TCP connections of ``server_ports``; see the module documentation."""

    def __init__(self, server_ports: frozenset[int], limits: Limits | None = None) -> None:
        self.server_ports = server_ports
        self.limits = limits if limits is not None else Limits()
        self.gaps = 0
        self.gap_bytes = 0
        self.payload_bytes = 0  # of every segment fed, retransmissions included (Stats.bytes)
        self._next_id = 0
        self._directions: dict[FlowKey, _Direction] = {}
        # Open connections, least recently active first (moved to the end on every segment).
        self._live: OrderedDict[int, _Connection] = OrderedDict()
        # Closed connections still remembered, oldest first, with the time they closed.
        self._lingering: OrderedDict[int, tuple[_Connection, float]] = OrderedDict()
        self._buffering: set[_Direction] = set()
        self._buffered_total = 0

    @property
    def open_connections(self) -> int:
        return len(self._live)

    @property
    def buffered_bytes(self) -> int:
        return self._buffered_total

    def feed(self, segment: Segment, ts: float, interface: str = "") -> list[AnyEvent]:
        return self.feed_frames([frame_of(ts, interface, segment)])

    def feed_batch(self, batch: Iterable[tuple[float, str, Segment]]) -> list[AnyEvent]:
        """Feed captured ``(ts, interface, segment)`` in order; the events of them all."""
        # Made one at a time, as the loop takes them: a list of them all would outlive
        # young collections, and make older ones walk it.
        return self.feed_frames(
            frame_of(ts, interface, segment) for ts, interface, segment in batch
        )

    def feed_frames(self, frames: Iterable[Frame]) -> list[AnyEvent]:
        """Feed captured frames (agent.packet.Frame) in order; the events of them all.

        The common case, in-order data of a connection already followed, is handled right in
        this loop: under a flood it is nearly every frame, and a call, a Segment and a list
        per frame were most of the capture's time. A run of such frames of one direction
        (a bulk transfer) becomes one DataReceived, up to ``_JOIN_UP_TO`` bytes, which spares
        every later stage an event per segment; its pieces are joined once, when it ends."""
        out: list[AnyEvent] = []
        append = out.append
        get = self._directions.get
        move_to_end = self._live.move_to_end
        run_half: _Direction | None = None  # the direction whose run ``run`` is
        run = _NO_EVENT
        run_pieces: list[bytes] | None = None  # the run's payloads, once it has two
        run_size = 0
        fed = 0  # payload bytes: counted here, as a pass of their own cost more under a flood
        for ts, interface, key, seq, ack, flags, payload in frames:
            size = len(payload)
            fed += size
            half = get(key)
            if half is None or flags & _CONTROL or half.conn.closed:
                out += self._feed_slow(
                    segment_of(key, seq, ack, flags, payload), half, ts, interface
                )
                run_half = None
                continue
            conn = half.conn
            conn.last_seen = ts
            move_to_end(conn.id)
            peer = half.peer
            if flags & ACK and ack != peer.next_seq and peer.next_seq != _UNSYNCED:
                count = len(out)
                self._peer_acked(peer, ack, ts, out)
                if len(out) != count:
                    run_half = None
            if not size:
                continue
            if seq != half.next_seq or half.starts or half.fin_at is not None:
                count = len(out)
                self._receive(half, seq, payload, ts, out)
                if len(out) != count:
                    run_half = None
                continue
            half.next_seq = (seq + size) & _MASK
            half.pos += size
            if half is run_half and run_size < _JOIN_UP_TO:
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
        return out

    def expire(self, now: float) -> list[AnyEvent]:
        """Close connections idle for ``Limits.idle_timeout`` and forget old closed ones."""
        out: list[AnyEvent] = []
        deadline = now - self.limits.idle_timeout
        while self._live:
            conn = next(iter(self._live.values()))
            if conn.last_seen > deadline:
                break
            self._close(conn, "idle", now, out, linger=False)
        linger_deadline = now - self.limits.closed_linger
        while self._lingering:
            conn, closed_at = next(iter(self._lingering.values()))
            if closed_at > linger_deadline:
                break
            self._forget(conn)
        return out

    def close_all(self, now: float) -> list[AnyEvent]:
        """Deliver what is buffered and close every connection (the capture is ending)."""
        out: list[AnyEvent] = []
        for conn in list(self._live.values()):
            self._close(conn, "shutdown", now, out, linger=False)
        while self._lingering:
            self._forget(next(iter(self._lingering.values()))[0])
        return out

    # -- segments that are not plain in-order data ------------------------------------------

    def _feed_slow(
        self, segment: Segment, half: _Direction | None, ts: float, interface: str
    ) -> list[AnyEvent]:
        seq, ack, flags, payload = segment[4:]
        out: list[AnyEvent] = []
        if half is not None and half.conn.closed and not flags & SYN:
            return out  # a late segment of a connection that has ended
        if flags & RST:
            if half is not None:
                self._close(half.conn, "rst", ts, out, linger=True)
            return out
        if flags & SYN:
            half = self._synchronize(segment, half, ts, interface, out)
            if half is None:
                return out
            seq = (seq + 1) & _MASK  # the SYN itself takes one sequence number; data follows
        elif half is None:
            if not payload:
                return out
            half = self._join_mid_stream(segment, ts, interface, out)
            if half is None:
                return out
        conn = half.conn
        conn.last_seen = ts
        self._live.move_to_end(conn.id)
        if flags & ACK and ack != half.peer.next_seq:
            self._peer_acked(half.peer, ack, ts, out)
        if half.next_seq == _UNSYNCED:
            half.next_seq = seq
        if flags & FIN and half.fin_at is None:
            half.fin_at = half.pos + _distance(seq, half.next_seq) + len(payload)
            # A FIN that lands before bytes already accounted for is a stray; trust the stream.
            half.fin_at = max(half.fin_at, half.pos)
        if payload:
            self._receive(half, seq, payload, ts, out)
        if half.held == half.pos and half.fin_at is not None and half.fin_at > half.pos:
            # The FIN came later in the stream: the held sequence number was a byte.
            self._skip(half, half.pos + 1, "lost", ts, out)
        if half.fin_at is not None and half.peer.fin_at is not None and not conn.closed:
            self._close(conn, "fin", ts, out, linger=True)
        return out

    def _synchronize(
        self,
        segment: Segment,
        half: _Direction | None,
        ts: float,
        interface: str,
        out: list[AnyEvent],
    ) -> _Direction | None:
        """Handle a SYN or SYN-ACK; return the direction it belongs to, or None to ignore it."""
        src, sport, dst, dport, seq, ack, flags, _ = segment
        if sport not in self.server_ports and dport not in self.server_ports:
            return None
        if flags & ACK:
            if half is not None and not half.conn.closed:
                if half.next_seq != _UNSYNCED:
                    return None  # a retransmitted SYN-ACK
                half.next_seq = (seq + 1) & _MASK
                return half
            # The SYN was missed; the SYN-ACK's sender is the server, nothing of the stream is.
            conn = self._open(dst, dport, src, sport, ts, interface, False, out)
            conn.client.next_seq = ack
            conn.server.next_seq = (seq + 1) & _MASK
            return conn.server
        if half is not None and not half.conn.closed:
            if half.conn.syn_seq == seq and half is half.conn.client:
                return None  # a retransmitted SYN
            # A new SYN on a tuple still open: the old connection ended without us seeing it.
            reason: CloseReason = "fin" if half.fin_at is not None else "idle"
            self._close(half.conn, reason, ts, out, linger=False)
        conn = self._open(src, sport, dst, dport, ts, interface, False, out)
        conn.syn_seq = seq
        conn.client.next_seq = (seq + 1) & _MASK
        return conn.client

    def _join_mid_stream(
        self, segment: Segment, ts: float, interface: str, out: list[AnyEvent]
    ) -> _Direction | None:
        src, sport, dst, dport = segment[:4]
        to_server = dport in self.server_ports
        from_server = sport in self.server_ports
        if to_server and from_server:
            to_server = dport <= sport
        elif not to_server and not from_server:
            return None
        if to_server:
            return self._open(src, sport, dst, dport, ts, interface, True, out).client
        return self._open(dst, dport, src, sport, ts, interface, True, out).server

    def _open(
        self,
        client: bytes,
        client_port: int,
        server: bytes,
        server_port: int,
        ts: float,
        interface: str,
        mid_stream: bool,
        out: list[AnyEvent],
    ) -> _Connection:
        while len(self._live) >= self.limits.max_connections:
            idlest = next(iter(self._live.values()))
            self._close(idlest, "evicted", ts, out, linger=False)
        conn = _Connection(self._next_id, ts)
        self._next_id += 1
        inbound = _Direction(conn, "in", flow_key(client, client_port, server, server_port))
        outbound = _Direction(conn, "out", flow_key(server, server_port, client, client_port))
        inbound.peer, outbound.peer = outbound, inbound
        conn.client, conn.server = inbound, outbound
        for direction in (inbound, outbound):
            previous = self._directions.get(direction.key)
            if previous is not None and previous.conn.closed:
                self._lingering.pop(previous.conn.id, None)
            self._directions[direction.key] = direction
        self._live[conn.id] = conn
        out.append(
            ConnectionOpened(
                ts=ts,
                conn=conn.id,
                client=str(ipaddress.ip_address(client)),
                client_port=client_port,
                server=str(ipaddress.ip_address(server)),
                server_port=server_port,
                interface=interface,
                mid_stream=mid_stream,
            )
        )
        return conn

    def _close(
        self, conn: _Connection, reason: CloseReason, ts: float, out: list[AnyEvent], linger: bool
    ) -> None:
        for half in (conn.client, conn.server):
            end = max(half.buffer_end(), half.fin_at or 0)
            if half.holds_unseen_fin():
                end = max(end, half.pos + 1)  # ended without that FIN: it was a byte, lost
            self._skip(half, end, "lost", ts, out)
        conn.closed = True
        del self._live[conn.id]
        out.append(ConnectionClosed(ts=ts, conn=conn.id, reason=reason))
        if linger:
            self._lingering[conn.id] = (conn, ts)
            while len(self._lingering) > self.limits.max_connections:
                self._forget(next(iter(self._lingering.values()))[0])
        else:
            self._forget(conn)

    def _forget(self, conn: _Connection) -> None:
        self._lingering.pop(conn.id, None)
        for half in (conn.client, conn.server):
            if self._directions.get(half.key) is half:
                del self._directions[half.key]

    # -- the byte stream of one direction ----------------------------------------------------

    def _peer_acked(self, half: _Direction, ack: int, ts: float, out: list[AnyEvent]) -> None:
        """The receiver of ``half`` acknowledged up to ``ack``: what we miss below it is lost."""
        if half.next_seq == _UNSYNCED:
            return
        ahead = _distance(ack, half.next_seq)
        if ahead <= 0:
            return
        target = half.pos + ahead
        if half.fin_at is not None:
            target = min(target, half.fin_at)  # the FIN takes a sequence number, not a byte
        elif ahead == 1 and not half.starts:
            half.held = half.pos  # maybe the FIN, seen later: wait for proof either way
            return
        self._skip(half, target, "lost", ts, out)

    def _receive(
        self, half: _Direction, seq: int, payload: bytes, ts: float, out: list[AnyEvent]
    ) -> None:
        if half.next_seq == _UNSYNCED:
            half.next_seq = seq  # joined mid-stream: this direction starts here
        start = half.pos + _distance(seq, half.next_seq)
        if start > half.pos and half.holds_unseen_fin():
            self._skip(half, half.pos + 1, "lost", ts, out)  # bytes follow it: it was no FIN
        self._accept(half, start, payload, ts, out)

    def _accept(
        self, half: _Direction, start: int, data: bytes, ts: float, out: list[AnyEvent]
    ) -> None:
        origin, size = start, len(data)
        end = start + size
        if half.fin_at is not None and end > half.fin_at:
            end = half.fin_at  # nothing follows a FIN
        while True:
            start = max(start, half.pos)
            if end <= start:
                return
            if end - start != size:
                data = data[start - origin : end - origin]
                origin, size = start, end - start
            pieces = self._uncovered(half, start, data)
            if start == half.pos or not self._over_limit(half, pieces, ts, out):
                break
        starts, chunks = half.starts, half.chunks
        for piece_start, piece in pieces:
            if not starts or piece_start > starts[-1]:
                starts.append(piece_start)  # the common case: the buffer grows at its end
                chunks.append(piece)
            else:
                index = bisect.bisect_left(starts, piece_start)
                starts.insert(index, piece_start)
                chunks.insert(index, piece)
            self._account(half, len(piece))
        if starts and starts[0] == half.pos:
            self._drain(half, ts, out)

    def _over_limit(
        self,
        half: _Direction,
        pieces: list[tuple[int, bytes]],
        ts: float,
        out: list[AnyEvent],
    ) -> bool:
        """Whether buffering ``pieces`` out of order would break a bound. If so, give up the
        holes of the fullest buffer to make room (that buffer is then empty, so callers that
        loop on this end) and return True: positions have moved."""
        size = sum(len(piece) for _, piece in pieces)
        limits = self.limits
        reason: GapReason
        if half.buffered + size > limits.direction_buffer:
            victim, reason = half, "buffer-limit"
        elif self._buffered_total + size > limits.total_buffer:
            victim = max(self._buffering, key=lambda d: d.buffered, default=half)
            reason = "memory-limit"
        else:
            return False
        # With nothing buffered, the segment alone is too big: skip to where it starts.
        target = victim.buffer_end() if victim.starts else pieces[0][0]
        self._skip(victim, target, reason, ts, out)
        return True

    @staticmethod
    def _uncovered(half: _Direction, start: int, data: bytes) -> list[tuple[int, bytes]]:
        """The parts of ``data`` (at stream offset ``start``) that no buffered chunk holds:
        the first copy of a byte is the one kept."""
        starts, chunks = half.starts, half.chunks
        if not starts or start >= starts[-1] + len(chunks[-1]):
            return [(start, data)]
        end = start + len(data)
        pieces = []
        index = max(bisect.bisect_right(starts, start) - 1, 0)
        cursor = start
        while cursor < end and index < len(starts):
            chunk_start = starts[index]
            if chunk_start >= end:
                break
            chunk_end = chunk_start + len(chunks[index])
            if chunk_start > cursor:
                pieces.append((cursor, data[cursor - start : chunk_start - start]))
            cursor = max(cursor, chunk_end)
            index += 1
        if cursor < end:
            pieces.append((cursor, data[cursor - start :]))
        return pieces

    def _account(self, half: _Direction, size: int) -> None:
        if not half.buffered and size > 0:
            self._buffering.add(half)
        half.buffered += size
        self._buffered_total += size
        if not half.buffered:
            self._buffering.discard(half)

    def _drain(self, half: _Direction, ts: float, out: list[AnyEvent]) -> None:
        """Deliver, as one event, the buffered chunks that now continue the stream."""
        starts, chunks = half.starts, half.chunks
        pos = half.pos
        count = 0
        while count < len(starts) and starts[count] == pos:
            pos += len(chunks[count])
            count += 1
        if not count:
            return
        data = chunks[0] if count == 1 else b"".join(chunks[:count])
        del starts[:count]
        del chunks[:count]
        self._account(half, -len(data))
        self._advance(half, len(data))
        out.append(DataReceived(ts=ts, conn=half.conn.id, direction=half.direction, data=data))

    def _skip(
        self, half: _Direction, target: int, reason: GapReason, ts: float, out: list[AnyEvent]
    ) -> None:
        """Account for the stream up to ``target``: buffered bytes are delivered, holes become
        gaps of their exact length."""
        while half.pos < target:
            if half.starts and half.starts[0] == half.pos:
                self._drain(half, ts, out)
                continue
            hole_end = min(target, half.starts[0]) if half.starts else target
            length = hole_end - half.pos
            self.gaps += 1
            self.gap_bytes += length
            self._advance(half, length)
            out.append(
                Gap(
                    ts=ts, conn=half.conn.id, direction=half.direction, length=length, reason=reason
                )
            )
        self._drain(half, ts, out)

    @staticmethod
    def _advance(half: _Direction, size: int) -> None:
        half.pos += size
        half.next_seq = (half.next_seq + size) & _MASK
