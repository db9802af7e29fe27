"""One direction of an HTTP/2 connection cut into frames, with hyperframe.

The reader keeps a bounded buffer: DATA payloads are handed on piece by piece as they arrive (a
16 MB frame never waits whole in memory), other frames wait until complete, up to a cap past
which they are skipped. Where the frame boundaries are unknown (a connection joined mid-stream,
bytes lost), it resynchronises: it looks for a 9-byte header that is plausible for its type,
whose frame is followed by another plausible header (or ends exactly where the bytes seen end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hyperframe.exceptions import HyperframeError
from hyperframe.frame import Frame

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER_SIZE: Final = 9
MAX_NON_DATA_FRAME: Final = 1 << 20
"""A non-DATA frame longer than this is skipped (the protocol allows 16 MB; no peer sends it)."""
RESYNC_MAX_LENGTH: Final = 16384
"""While resynchronising, frames are only believed up to the default maximum frame size."""

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0, 1, 2, 3, 4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 5, 6, 7, 8, 9
END_STREAM, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x4, 0x8, 0x20

# Per frame type: the flags it may carry, whether it belongs to a stream, its fixed length.
_ALLOWED_FLAGS = {
    DATA: END_STREAM | PADDED,
    HEADERS: END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG,
    PRIORITY: 0,
    RST_STREAM: 0,
    SETTINGS: 0x1,
    PUSH_PROMISE: END_HEADERS | PADDED,
    PING: 0x1,
    GOAWAY: 0,
    WINDOW_UPDATE: 0,
    CONTINUATION: END_HEADERS,
}
_ON_STREAM = {DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE, CONTINUATION}
_FIXED_LENGTH = {PRIORITY: 5, RST_STREAM: 4, PING: 8, WINDOW_UPDATE: 4}

ERROR_CODES = (
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
)


def error_name(code: int) -> str:
    """RST_STREAM's and GOAWAY's error code by its name (RFC 9113, section 7)."""
    return ERROR_CODES[code] if 0 <= code < len(ERROR_CODES) else f"error 0x{code:x}"


@dataclass(slots=True)
class DataPiece:
    """Part of a DATA frame's payload (padding removed). ``end_stream`` only on the last."""

    stream_id: int
    data: bytes | bytearray
    last: bool
    end_stream: bool


@dataclass(slots=True)
class FrameSkipped:
    """A frame that could not be parsed or was too long to keep; its stream lost it."""

    stream_id: int
    frame_type: int
    reason: str


Item = Frame | DataPiece | FrameSkipped


def plausible_header(buf: bytes | bytearray, at: int, max_length: int = RESYNC_MAX_LENGTH) -> int:
    """The frame length if ``buf[at:at + 9]`` looks like a frame header, else -1."""
    length = (buf[at] << 16) | (buf[at + 1] << 8) | buf[at + 2]
    kind = buf[at + 3]
    flags = buf[at + 4]
    stream_id = int.from_bytes(buf[at + 5 : at + 9], "big")
    allowed = _ALLOWED_FLAGS.get(kind)
    if allowed is None or flags & ~allowed or stream_id & 0x80000000:
        return -1
    if length > max_length:
        return -1
    if kind != WINDOW_UPDATE and (stream_id != 0) != (kind in _ON_STREAM):
        return -1
    fixed = _FIXED_LENGTH.get(kind)
    if (fixed is not None and length != fixed) or (kind == SETTINGS and length % 6):
        return -1
    return length


def looks_like_http2(data: bytes | bytearray, scan: int = RESYNC_MAX_LENGTH) -> bool:
    """Bytes from the middle of a connection hold a run of HTTP/2 frames: three plausible
    frames back to back, or two that end exactly where the bytes end, starting within the
    first ``scan`` bytes. A run like that is rare in anything else (a frame header admits one
    in about 10^5 random positions, a chain of them far fewer)."""
    end = len(data)
    last_start = min(scan, end - HEADER_SIZE + 1)
    start = -1
    while True:
        # A believable frame is under 16 KiB: its length's first byte is 0. Only those
        # positions are tried, which skips almost all of text and most of anything else.
        start = data.find(b"\0", start + 1, last_start)
        if start < 0:
            return False
        at, frames = start, 0
        while end - at >= HEADER_SIZE:
            length = plausible_header(data, at)
            if length < 0 or at + HEADER_SIZE + length > end:
                break
            at += HEADER_SIZE + length
            frames += 1
            if frames >= 3 or (frames >= 2 and at == end):
                return True


def may_open_http2_server(data: bytes | bytearray) -> bool:
    """The server's first bytes may be its HTTP/2 connection preface (a SETTINGS frame, which
    an HTTP/2 server may send before the client's preface arrives)."""
    head = bytes(data[:HEADER_SIZE]).ljust(HEADER_SIZE, b"\0")
    have = min(len(data), HEADER_SIZE)
    if have > 3 and head[3] != SETTINGS:
        return False
    if have > 4 and head[4]:
        return False
    if have >= HEADER_SIZE and (head[5:9] != bytes(4) or plausible_header(head, 0) < 0):
        return False
    return have == 0 or head[0] == 0


class FrameReader:
    """Feed bytes, then take items until None. Never raises on any input."""

    __slots__ = (
        "_buf",
        "_data",
        "_pos",
        "_synced",
        "expect_preface",
        "max_frame_size",
        "skipped_bytes",
    )

    def __init__(self, synced: bool, expect_preface: bool = False) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._synced = synced
        self.expect_preface = expect_preface
        # A DATA frame being read: [stream id, payload left, padding left, flags]; or None.
        self._data: list[int] | None = None
        self.skipped_bytes = 0
        """Bytes passed over while resynchronising."""
        self.max_frame_size = RESYNC_MAX_LENGTH
        """The largest frame the receiver allowed (its SETTINGS_MAX_FRAME_SIZE): while
        resynchronising, longer ones are not believed."""

    @property
    def synced(self) -> bool:
        return self._synced

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def lose(self) -> None:
        """Bytes are missing here: what is buffered can no longer be placed."""
        self._buf.clear()
        self._pos = 0
        self._data = None
        self._synced = False
        self.expect_preface = False

    def skip_inside_data(self, length: int) -> tuple[int, int] | None:
        """Bytes are missing inside the DATA frame being read: step over them, keeping the
        framing. (stream id, payload bytes lost), or None if the gap does not fall wholly
        inside one (then call ``lose``)."""
        state = self._data
        if state is None or self._pos != len(self._buf):
            return None
        stream_id, left, padding, _ = state
        if length > left + padding:
            return None
        payload = min(length, left)
        state[1] = left - payload
        state[2] = padding - (length - payload)
        return stream_id, payload

    def next(self) -> Item | None:
        if self._data is not None:
            return self._data_piece()
        if self.expect_preface and not self._take_preface():
            return None
        if not self._synced and not self._resync():
            return None
        buf, at = self._buf, self._pos
        if len(buf) - at < HEADER_SIZE:
            return None
        kind = buf[at + 3]
        length = (buf[at] << 16) | (buf[at + 1] << 8) | buf[at + 2]
        if kind == DATA:
            return self._start_data(length)
        if length > MAX_NON_DATA_FRAME:
            return self._skip_long(length)
        end = at + HEADER_SIZE + length
        if end > len(buf):
            return None
        self._pos = end
        return _parse(memoryview(buf)[at:end], length)

    # ------------------------------------------------------------------------------- DATA

    def _start_data(self, length: int) -> Item | None:
        buf, at = self._buf, self._pos
        flags = buf[at + 4]
        stream_id = (buf[at + 5] & 0x7F) << 24 | buf[at + 6] << 16 | buf[at + 7] << 8 | buf[at + 8]
        end = at + HEADER_SIZE + length
        if not flags & PADDED and end <= len(buf):
            # The whole frame is here (the common case): one piece, no reading state.
            self._pos = end
            return DataPiece(stream_id, buf[at + HEADER_SIZE : end], True, bool(flags & END_STREAM))
        padding = 0
        header = HEADER_SIZE
        if flags & PADDED and length == 0:
            self._pos = at + HEADER_SIZE
            return FrameSkipped(stream_id, DATA, "a padded frame with no pad length")
        if flags & PADDED:
            if len(buf) - at < HEADER_SIZE + 1:
                return None
            padding = buf[at + HEADER_SIZE]
            header += 1
            if length < 1 + padding:
                self._pos = at + header
                self._data = [stream_id, 0, max(0, length - 1), 0]
                return FrameSkipped(stream_id, DATA, "padding longer than the frame")
            length -= 1 + padding
        self._pos = at + header
        self._data = [stream_id, length, padding, flags]
        return self._data_piece()

    def _data_piece(self) -> Item | None:
        state = self._data
        assert state is not None
        stream_id, left, padding, flags = state
        buf, at = self._buf, self._pos
        take = min(left, len(buf) - at)
        if take == 0 and left:
            return None
        piece = buf[at : at + take]
        self._pos = at + take
        state[1] = left = left - take
        if left == 0:
            # Padding is dropped as it comes, the frame ends when all of it has passed.
            drop = min(padding, len(buf) - self._pos)
            self._pos += drop
            state[2] = padding = padding - drop
            if padding == 0:
                self._data = None
            elif not piece:
                return None
        last = self._data is None
        return DataPiece(stream_id, piece, last, last and bool(flags & END_STREAM))

    # ------------------------------------------------------------------------------- others

    def _skip_long(self, length: int) -> Item:
        buf, at = self._buf, self._pos
        stream_id = int.from_bytes(buf[at + 5 : at + 9], "big") & 0x7FFFFFFF
        kind = buf[at + 3]
        # Passed over like a DATA frame's payload, without keeping it.
        self._pos = at + HEADER_SIZE
        self._data = [0, 0, length, 0]
        return FrameSkipped(stream_id, kind, f"a frame of {length} bytes is past the cap")

    def _take_preface(self) -> bool:
        buf, at = self._buf, self._pos
        have = min(len(buf) - at, len(PREFACE))
        if buf[at : at + have] != PREFACE[:have]:
            self.expect_preface = False
            self._synced = False
            return True
        if have < len(PREFACE):
            return False
        self._pos = at + len(PREFACE)
        self.expect_preface = False
        return True

    def _resync(self) -> bool:
        """Move to the first frame boundary the bytes confirm; False to wait for more.

        A boundary is confirmed by a plausible frame followed by another plausible header, or
        ending exactly where the bytes end. A plausible header whose frame is not complete yet
        may still be one: the scan goes on past it, and if nothing later is confirmed, it is
        where the next scan starts.
        """
        buf = self._buf
        at = self._pos
        end = len(buf)
        pending = -1
        while end - at >= HEADER_SIZE:
            length = plausible_header(buf, at, self.max_frame_size)
            if length >= 0:
                after = at + HEADER_SIZE + length
                if after == end or (
                    end - after >= HEADER_SIZE
                    and plausible_header(buf, after, self.max_frame_size) >= 0
                ):
                    self._synced = True
                    self._move(at)
                    return True
                if pending < 0 and (after > end or end - after < HEADER_SIZE):
                    pending = at
            at += 1
        self._move(at if pending < 0 else pending)
        return False

    def _move(self, at: int) -> None:
        self.skipped_bytes += at - self._pos
        self._pos = at


def _parse(view: memoryview, length: int) -> Item:
    try:
        frame, _ = Frame.parse_frame_header(view[:HEADER_SIZE])
        frame.parse_body(view[HEADER_SIZE:])
    except (HyperframeError, ValueError, IndexError) as exc:
        stream_id = int.from_bytes(view[5:9], "big") & 0x7FFFFFFF
        return FrameSkipped(stream_id, view[3], str(exc) or type(exc).__name__)
    return frame
