"""TCP reassembly (sans-IO): captured segments in, connection and byte-stream events out.

One :class:`Reassembler` follows every connection to or from the watched server ports and turns
the segments of both directions into ``ConnectionOpened``, ``DataReceived``, ``Gap`` and
``ConnectionClosed`` events, with ``seq=0`` (the journal numbers them) and ``ts`` the capture
time it was given. It never reads a clock: time only comes in through ``feed``/``expire``.

This module keeps the table of connections and the per-frame fast path; the bytes of each
direction are put in order, and their losses found, by agent.byte_streams (positions, loss and
an acknowledged FIN not seen yet are explained there). How it decides, in short:

- **Who is the server.** The sender of a SYN is the client (the sender of a SYN-ACK is the
  server). A connection first seen mid-stream is oriented by ``server_ports``; if both ports are
  watched, the lower one is taken as the server (ephemeral ports are high).
- **Closing.** A connection closes once a FIN has been seen from each side (the final bare ACK
  is not waited for: the capture filter usually drops bare ACKs), or on RST. A closed 4-tuple is
  remembered for ``Limits.closed_linger`` seconds so that its late retransmissions are ignored
  instead of opening a phantom connection; a new SYN on it starts a new connection. Whatever a
  direction still misses when its connection ends (FIN from both sides, RST, idle expiry,
  eviction, shutdown) is lost.
- **Joining mid-stream.** A segment with payload for an unknown 4-tuple opens a connection
  marked ``mid_stream``; each direction starts at its first byte seen. Segments without payload
  never open one.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from agent.byte_streams import SEQ_MASK, UNSYNCED, ByteStream, ByteStreams
from agent.events import (
    AnyEvent,
    CloseReason,
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    Direction,
)
from agent.packet import ACK, FIN, RST, SYN, FlowKey, Frame, Segment, flow_key, frame_of, segment_of

_CONTROL = SYN | FIN | RST
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


class _Direction(ByteStream):
    """A direction's byte stream, with its place in the table: its connection, its 4-tuple
    and the opposite direction. It extends the stream rather than holding one, so that the
    per-frame fast path reads both kinds of slot on one object, with no hop between."""

    __slots__ = ("closed", "conn", "key", "peer")

    def __init__(self, conn: _Connection, direction: Direction, key: FlowKey) -> None:
        super().__init__(conn.id, direction)
        self.conn = conn
        self.key = key
        self.peer: _Direction = self
        # The connection's state, kept here too: the per-frame fast path tests it on every
        # segment, and one attribute is cheaper than two.
        self.closed = False


class _Connection:
    __slots__ = ("client", "closed", "id", "last_seen", "server", "syn_seq")

    # Set by Reassembler._open right after construction: the directions need the connection.
    client: _Direction
    server: _Direction

    def __init__(self, conn_id: int, ts: float) -> None:
        self.id = conn_id
        self.last_seen = ts
        self.closed = False
        self.syn_seq = UNSYNCED


class Reassembler:
    """Follows the TCP connections of ``server_ports``; see the module documentation."""

    def __init__(self, server_ports: frozenset[int], limits: Limits | None = None) -> None:
        self.server_ports = server_ports
        self.limits = limits if limits is not None else Limits()
        self._streams = ByteStreams(self.limits.direction_buffer, self.limits.total_buffer)
        self.payload_bytes = 0  # of every segment fed, retransmissions included (Stats.bytes)
        self._next_id = 0
        self._directions: dict[FlowKey, _Direction] = {}
        # Open connections, least recently active first (moved to the end on every segment).
        self._live: OrderedDict[int, _Connection] = OrderedDict()
        # Closed connections still remembered, oldest first, with the time they closed.
        self._lingering: OrderedDict[int, tuple[_Connection, float]] = OrderedDict()

    @property
    def open_connections(self) -> int:
        return len(self._live)

    @property
    def buffered_bytes(self) -> int:
        return self._streams.buffered_total

    @property
    def gaps(self) -> int:
        return self._streams.gaps

    @property
    def gap_bytes(self) -> int:
        return self._streams.gap_bytes

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
        every later stage an event per segment; its pieces are joined once, when it ends.
        agent.ring_reassembly repeats this loop's body: a change here belongs there too."""
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
            if half is None or flags & _CONTROL or half.closed:
                out += self._feed_slow(
                    segment_of(key, seq, ack, flags, payload), half, ts, interface
                )
                run_half = None
                continue
            conn = half.conn
            conn.last_seen = ts
            move_to_end(conn.id)
            peer = half.peer
            if flags & ACK and ack != peer.next_seq and peer.next_seq != UNSYNCED:
                count = len(out)
                self._streams.acknowledged(peer, ack, ts, out)
                if len(out) != count:
                    run_half = None
            if not size:
                continue
            if seq != half.next_seq or half.starts or half.fin_at is not None:
                count = len(out)
                self._streams.receive(half, seq, payload, ts, out)
                if len(out) != count:
                    run_half = None
                continue
            half.next_seq = (seq + size) & SEQ_MASK
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
        if half is not None and half.conn.closed:
            if not flags & SYN:
                return out  # a late segment of a connection that has ended
            # A SYN may start a new connection on the tuple; to everything below, the ended
            # one is no longer there (a reset with it must not close it a second time).
            half = None
        if flags & RST:
            if half is not None:
                self._close(half.conn, "rst", ts, out, linger=True)
            return out
        if flags & SYN:
            half = self._synchronize(segment, half, ts, interface, out)
            if half is None:
                return out
            seq = (seq + 1) & SEQ_MASK  # the SYN itself takes one sequence number; data follows
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
            self._streams.acknowledged(half.peer, ack, ts, out)
        self._streams.receive_segment(half, seq, payload, bool(flags & FIN), ts, out)
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
                if half.next_seq != UNSYNCED:
                    return None  # a retransmitted SYN-ACK
                half.next_seq = (seq + 1) & SEQ_MASK
                return half
            # The SYN was missed; the SYN-ACK's sender is the server, nothing of the stream is.
            conn = self._open(dst, dport, src, sport, ts, interface, False, out)
            conn.client.next_seq = ack
            conn.server.next_seq = (seq + 1) & SEQ_MASK
            return conn.server
        if half is not None and not half.conn.closed:
            if half.conn.syn_seq == seq and half is half.conn.client:
                return None  # a retransmitted SYN
            # A new SYN on a tuple still open: the old connection ended without us seeing it.
            reason: CloseReason = "fin" if half.fin_at is not None else "idle"
            self._close(half.conn, reason, ts, out, linger=False)
        conn = self._open(src, sport, dst, dport, ts, interface, False, out)
        conn.syn_seq = seq
        conn.client.next_seq = (seq + 1) & SEQ_MASK
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
            self._streams.end(half, ts, out)
            half.closed = True
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
