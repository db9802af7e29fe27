"""One direction of a tapped HTTP/1.x connection: its bytes, where parsing stands in them, and
the h11 connection parsing the current message.

The buffer holds the stream from the current message's first byte, which lets the decoder hand
h11 bounded pieces (never re-seed it with a whole pipelined backlog), scan for the next message
after malformed input or a gap, and tell when each message began (the capture time of the chunk
that carried its first byte).
"""

from __future__ import annotations

import re
from collections import deque

import h11

from tui.model.flows import Exchange
from tui.model.http1_framing import MAX_HEAD

_PIECE = 8192
"""How much is handed to h11 at once: bounds the copy h11 makes of its leftover per message.
Of a head, h11 is never handed more than ``MAX_HEAD`` bytes (see ``H11_HEAD_LIMIT``)."""
_KEEP_BEHIND = 65536
"""Bytes of a long body kept behind the parse point (h11 may still hold some of them)."""
_MAX_SCAN_LINE = 8192
"""A partial line longer than this is not waited for when resynchronising."""


class ByteReader:
    """One direction's bytes and where parsing stands in them.

    ``buf[pos:]`` is the current message (or the text being scanned), ``buf[:fed]`` what the
    current h11 connection has been given. ``base`` is the stream offset of ``buf[0]``.
    ``buf[pos - 1]`` is always the byte before (or a newline standing for the start of the
    stream or a gap), so a scan can tell whether ``pos`` starts a line.
    """

    __slots__ = (
        "base",
        "body_seen",
        "buf",
        "chunks",
        "eof",
        "eof_sent",
        "exchange",
        "fed",
        "h11",
        "head_done",
        "head_start",
        "pos",
        "scanned",
        "skipped",
        "store_body",
    )

    def __init__(self) -> None:
        self.buf = bytearray(b"\n")
        self.base = -1
        self.pos = 1
        self.fed = 1
        self.h11: h11.Connection | None = None
        self.head_done = False
        # Where the head h11 is reading starts: the message's first byte, or the first byte
        # after the informational responses read before it.
        self.head_start = 1
        self.exchange: Exchange | None = None
        self.chunks: deque[tuple[int, float]] = deque()
        self.eof = False
        self.eof_sent = False
        self.skipped = 0
        # How far a scan for the next message got: the bytes before were looked at already.
        self.scanned = 0
        self.body_seen = 0
        self.store_body = True

    def append(self, data: bytes, ts: float) -> None:
        self.buf += data
        self.chunks.append((self.base + len(self.buf), ts))

    def ts_at(self, index: int) -> float:
        """Capture time of the chunk that carried ``buf[index]``."""
        offset = self.base + index
        chunks = self.chunks
        while len(chunks) > 1 and chunks[0][0] <= self.base + self.pos:
            chunks.popleft()
        for end, ts in chunks:
            if end > offset:
                return ts
        return chunks[-1][1] if chunks else 0.0

    def has_unparsed(self) -> bool:
        return self.pos < len(self.buf)

    def start_message(self, connection: h11.Connection) -> None:
        """Parse the next message with ``connection``, handing it the first piece right away
        (asking h11 for an event before it has bytes costs as much as parsing)."""
        self.h11 = connection
        self.fed = self.head_start = self.pos
        self.head_done = False
        self.body_seen = 0
        self.store_body = True
        self.eof_sent = False
        self.feed_more(send_eof=False)

    def feed_more(self, send_eof: bool) -> bool:
        """Give h11 the next piece (or the end of the stream); False when there is nothing."""
        assert self.h11 is not None
        if self.fed < len(self.buf):
            end = self.fed + _PIECE
            if not self.head_done:
                # No more of a head than MAX_HEAD bytes: h11 then refuses exactly the heads
                # those bytes do not complete, whether they came in one piece or many.
                end = min(end, self.head_start + MAX_HEAD)
                if end <= self.fed:
                    # (Unreached: holding MAX_HEAD bytes of an unfinished head, h11 refused it.)
                    return False
            piece = self.buf[self.fed : end]
            self.h11.receive_data(piece)  # type: ignore[arg-type]  # h11 copies any bytes-like
            self.fed += len(piece)
            if self.head_done and self.fed - self.pos > 2 * _KEEP_BEHIND:
                self._forget_before(self.fed - _KEEP_BEHIND)
            return True
        if send_eof and self.eof and not self.eof_sent:
            self.h11.receive_data(b"")
            self.eof_sent = True
            return True
        return False

    def informational_read(self) -> None:
        """h11 read an informational (1xx) head: the next head starts where it stopped."""
        assert self.h11 is not None
        self.head_start = self.fed - len(self.h11.trailing_data[0])

    def start_simple_message(self) -> None:
        """The next message's head is read without h11 (``http1_fast``)."""
        self.head_done = False
        self.body_seen = 0
        self.store_body = True
        self.eof_sent = False

    def read_body_with(self, connection: h11.Connection, start: int) -> None:
        """The body from ``buf[start]`` on is ``connection``'s to read (it has read a head
        framed as this one is)."""
        self.h11 = connection
        self.fed = start
        self.feed_more(send_eof=False)

    def end_simple_message(self, end: int) -> None:
        """The message read whole ended at ``buf[end]``, where the next one starts."""
        self.fed = end
        self._message_ended_at(end)

    def end_message(self) -> None:
        """The message ended: what h11 did not consume starts the next one."""
        assert self.h11 is not None
        leftover = len(self.h11.trailing_data[0])
        self.h11 = None
        self._message_ended_at(self.fed - leftover)

    def _message_ended_at(self, pos: int) -> None:
        self.exchange = None
        self.pos = pos
        if pos >= len(self.buf):
            # Everything is consumed (the common case): keep just the last byte as context.
            cut = pos - 1
            if cut > 0:
                del self.buf[:cut]
                self.base += cut
                self.pos = self.fed = 1
        elif pos > _KEEP_BEHIND:
            self._forget_before(pos)

    def abandon_message(self, start_line: re.Pattern[bytes]) -> None:
        """Malformed input: the scan for the next message starts just after the bad one.

        A head whose first line is a ``start_line`` is skipped whole: up to its blank line, or
        ``MAX_HEAD`` bytes when none is within them (too large, or cut by the end of the
        stream; h11 was never handed more of it, so what arrived after does not count).
        Its lines are never scanned again, so that a head full of lines that look like
        request lines costs one failure, not one per line. A head whose first line is not one
        (junk before a message) is skipped by that line only: a message may start further on
        it, or on the next. Inside a body, the scan starts from what h11 had not consumed.
        Either way the position does not depend on how the bytes were split into chunks, so
        the decoding does not either.
        """
        if self.h11 is not None and self.head_done:
            leftover = len(self.h11.trailing_data[0])
            self.pos = self.fed - leftover
        else:
            # The head refused, past the informational responses read before it.
            start = self.pos if self.h11 is None else self.head_start
            if start_line.match(self.buf, start):
                self.pos = self._head_end(start)
            else:
                self.pos = min(start + 1, len(self.buf))
        self.h11 = None
        self.exchange = None
        self.scanned = 0

    def _head_end(self, pos: int) -> int:
        buf = self.buf
        reach = min(len(buf), pos + MAX_HEAD)
        ends = [
            end + len(blank)
            for blank in (b"\n\r\n", b"\n\n")
            if (end := buf.find(blank, pos, reach)) >= 0
        ]
        return min(ends) if ends else min(len(buf), pos + MAX_HEAD)

    def unparsed(self) -> tuple[bytes, float]:
        """The bytes no message has claimed yet (after a protocol switch, the new protocol's),
        and the capture time of the first of them."""
        start = self.pos if self.h11 is None else self.fed - len(self.h11.trailing_data[0])
        return bytes(self.buf[start:]), self.ts_at(start)

    def lose(self) -> None:
        """A gap: everything buffered is stale and the next byte may start a message."""
        self.base += len(self.buf) - 1
        self.buf = bytearray(b"\n")
        self.pos = self.fed = 1
        self.scanned = 0
        self.h11 = None
        self.exchange = None

    def _forget_before(self, index: int) -> None:
        """Drop the bytes before ``index``, all but the last one (kept as context)."""
        cut = index - 1
        if cut <= 0:
            return
        del self.buf[:cut]
        self.base += cut
        self.pos = max(1, self.pos - cut)
        self.fed = max(1, self.fed - cut)
        self.head_start = max(1, self.head_start - cut)
        self.scanned = max(0, self.scanned - cut)
        # The capture times of bytes let go are not asked for any more (a stream scanned a
        # byte at a time would otherwise keep one per byte).
        chunks, parsed = self.chunks, self.base + self.pos
        while len(chunks) > 1 and chunks[0][0] <= parsed:
            chunks.popleft()

    def _compact(self) -> None:
        if self.pos >= len(self.buf):
            self._forget_before(len(self.buf))
        elif self.pos > _KEEP_BEHIND:
            self._forget_before(self.pos)

    def resync(self, start: re.Pattern[bytes]) -> bool:
        """Find where the next message may start; True (and ``pos`` there) when found.

        A start line lies within one line and ends it, so only the lines completed since the
        last scan can hold one: each byte is scanned about once, however the stream is cut
        (a line arriving a byte at a time is not rescanned at every byte)."""
        buf, pos = self.buf, self.pos
        since = max(pos, self.scanned)
        last_newline = buf.rfind(b"\n", since)
        if last_newline >= 0:
            # From the start of the line that was unfinished at the last scan.
            begin = max(pos, buf.rfind(b"\n", pos, since) + 1)
            found = start.search(buf, begin, last_newline + 1)
            if found is not None:
                self.scanned = 0
                self._skip_to(found.start())
                return True
        self.scanned = len(buf)
        # Only the unfinished last line can still hold one, and it is not waited for forever.
        keep = max(buf.rfind(b"\n", pos), pos, len(buf) - _MAX_SCAN_LINE)
        self._skip_to(keep)
        return False

    def _skip_to(self, index: int) -> None:
        self.skipped += index - self.pos
        self.pos = index
        self._compact()
