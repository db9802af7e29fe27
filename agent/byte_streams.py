"""The byte stream of each TCP direction (sans-IO): its bytes put in order, its holes as gaps.

:class:`ByteStreams` takes the payload of one direction's segments (agent.tcp decides which
connection and direction a segment belongs to) and turns it into ``DataReceived`` and ``Gap``
events, within bounds on the out-of-order bytes held, shared by every direction it serves.

- **Positions.** Each direction counts stream bytes from 0 and converts 32-bit sequence numbers
  to that count through the signed distance to the next expected sequence number, so 2^32
  wraparound needs no special case. Out-of-order bytes wait in a sorted buffer; when bytes
  overlap, the first copy seen wins (that is what the receiving kernel keeps too).
- **Loss.** Bytes never seen become a ``Gap`` of their exact length, never zeros. A hole is
  declared lost when the peer acknowledges past it (the receiver got bytes the capture missed),
  when the connection ends (``end``), or when waiting for it would overrun a buffer bound
  (``buffer-limit`` / ``memory-limit``).
- **An acknowledged FIN not seen yet.** The capture may see a FIN's acknowledgement before the
  FIN (the two directions can come through different interfaces or CPUs). An acknowledgement
  exactly one past the bytes of a direction, with nothing of it buffered beyond, may cover a
  FIN, which takes a sequence number and no byte: that number is held, not reported. If the FIN
  turns up there, nothing was lost. It is a lost byte, reported as a 1-byte ``Gap``, as soon as
  anything shows it was not the FIN: data or a FIN beyond it, an acknowledgement past it, or the
  connection ending without that FIN.
"""

from __future__ import annotations

import bisect

from agent.events import AnyEvent, DataReceived, Direction, Gap, GapReason

SEQ_MASK = 0xFFFF_FFFF
_HALF = 0x8000_0000
UNSYNCED = -1
"""``ByteStream.next_seq`` before the direction's first sequence number is known."""


def distance(seq: int, reference: int) -> int:
    """Signed distance from ``reference`` to ``seq`` in 32-bit sequence space."""
    delta = (seq - reference) & SEQ_MASK
    return delta - 0x1_0000_0000 if delta >= _HALF else delta


class ByteStream:
    """One direction of a connection: where its stream stands and what waits out of order.

    ``pos`` counts the stream bytes accounted for (delivered or declared lost) and ``next_seq``
    is the sequence number of byte ``pos``. Buffered chunks never overlap, are sorted, and all
    start after ``pos``. ``held`` is the position of an acknowledged sequence number that may be
    the unseen FIN (see the module documentation); it means something only while it equals
    ``pos``, so moving ``pos`` on is enough to drop it."""

    __slots__ = (
        "buffered",
        "chunks",
        "conn_id",
        "direction",
        "fin_at",
        "held",
        "next_seq",
        "pos",
        "starts",
    )

    def __init__(self, conn_id: int, direction: Direction) -> None:
        self.conn_id = conn_id
        self.direction: Direction = direction
        self.next_seq = UNSYNCED
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


class ByteStreams:
    """Puts the bytes of every direction it is handed in order, within ``direction_buffer``
    out-of-order bytes per direction and ``total_buffer`` for them all; counts the gaps."""

    def __init__(self, direction_buffer: int, total_buffer: int) -> None:
        self.direction_buffer = direction_buffer
        self.total_buffer = total_buffer
        self.gaps = 0
        self.gap_bytes = 0
        self.buffered_total = 0
        self._buffering: set[ByteStream] = set()

    def acknowledged(self, half: ByteStream, ack: int, ts: float, out: list[AnyEvent]) -> None:
        """The receiver of ``half`` acknowledged up to ``ack``: what we miss below it is lost."""
        if half.next_seq == UNSYNCED:
            return
        ahead = distance(ack, half.next_seq)
        if ahead <= 0:
            return
        target = half.pos + ahead
        if half.fin_at is not None:
            target = min(target, half.fin_at)  # the FIN takes a sequence number, not a byte
        elif ahead == 1 and not half.starts:
            half.held = half.pos  # maybe the FIN, seen later: wait for proof either way
            return
        self.skip(half, target, "lost", ts, out)

    def receive(
        self, half: ByteStream, seq: int, payload: bytes, ts: float, out: list[AnyEvent]
    ) -> None:
        """``payload`` arrived at sequence number ``seq``."""
        if half.next_seq == UNSYNCED:
            half.next_seq = seq  # joined mid-stream: this direction starts here
        start = half.pos + distance(seq, half.next_seq)
        if start > half.pos and half.holds_unseen_fin():
            self.skip(half, half.pos + 1, "lost", ts, out)  # bytes follow it: it was no FIN
        self._accept(half, start, payload, ts, out)

    def receive_segment(
        self,
        half: ByteStream,
        seq: int,
        payload: bytes,
        fin: bool,
        ts: float,
        out: list[AnyEvent],
    ) -> None:
        """A segment at ``seq`` (past any SYN), with or without a FIN, arrived."""
        if half.next_seq == UNSYNCED:
            half.next_seq = seq
        if fin and half.fin_at is None:
            half.fin_at = half.pos + distance(seq, half.next_seq) + len(payload)
            # A FIN that lands before bytes already accounted for is a stray; trust the stream.
            half.fin_at = max(half.fin_at, half.pos)
        if payload:
            self.receive(half, seq, payload, ts, out)
        if half.held == half.pos and half.fin_at is not None and half.fin_at > half.pos:
            # The FIN came later in the stream: the held sequence number was a byte.
            self.skip(half, half.pos + 1, "lost", ts, out)

    def end(self, half: ByteStream, ts: float, out: list[AnyEvent]) -> None:
        """The connection ended: deliver what ``half`` holds, its holes and any byte held as a
        possible FIN become gaps."""
        end = max(half.buffer_end(), half.fin_at or 0)
        if half.holds_unseen_fin():
            end = max(end, half.pos + 1)  # ended without that FIN: it was a byte, lost
        self.skip(half, end, "lost", ts, out)

    def skip(
        self, half: ByteStream, target: int, reason: GapReason, ts: float, out: list[AnyEvent]
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
            _advance(half, length)
            out.append(
                Gap(
                    ts=ts, conn=half.conn_id, direction=half.direction, length=length, reason=reason
                )
            )
        self._drain(half, ts, out)

    def _accept(
        self, half: ByteStream, start: int, data: bytes, ts: float, out: list[AnyEvent]
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
            pieces = _uncovered(half, start, data)
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
        half: ByteStream,
        pieces: list[tuple[int, bytes]],
        ts: float,
        out: list[AnyEvent],
    ) -> bool:
        """Whether buffering ``pieces`` out of order would break a bound. If so, give up the
        holes of the fullest buffer to make room (that buffer is then empty, so callers that
        loop on this end) and return True: positions have moved."""
        size = sum(len(piece) for _, piece in pieces)
        reason: GapReason
        if half.buffered + size > self.direction_buffer:
            victim, reason = half, "buffer-limit"
        elif self.buffered_total + size > self.total_buffer:
            victim = max(self._buffering, key=lambda d: d.buffered, default=half)
            reason = "memory-limit"
        else:
            return False
        # With nothing buffered, the segment alone is too big: skip to where it starts.
        target = victim.buffer_end() if victim.starts else pieces[0][0]
        self.skip(victim, target, reason, ts, out)
        return True

    def _account(self, half: ByteStream, size: int) -> None:
        if not half.buffered and size > 0:
            self._buffering.add(half)
        half.buffered += size
        self.buffered_total += size
        if not half.buffered:
            self._buffering.discard(half)

    def _drain(self, half: ByteStream, ts: float, out: list[AnyEvent]) -> None:
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
        _advance(half, len(data))
        out.append(DataReceived(ts=ts, conn=half.conn_id, direction=half.direction, data=data))


def _uncovered(half: ByteStream, start: int, data: bytes) -> list[tuple[int, bytes]]:
    """The parts of ``data`` (at stream offset ``start``) that no buffered chunk holds: the
    first copy of a byte is the one kept."""
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


def _advance(half: ByteStream, size: int) -> None:
    half.pos += size
    half.next_seq = (half.next_seq + size) & SEQ_MASK
