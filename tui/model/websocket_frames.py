"""WebSocket frames on the wire (RFC 6455, section 5): one direction's bytes cut into frame
headers and payloads, the masking of a client's payloads, and what no frame header may say.

``FrameReader`` reads one direction and says what it read through hooks that the message
assembly (``websocket``) fills in: a frame started (its fields are the reader's own), a piece of
its payload arrived (still masked: only what is kept needs unmasking), it ended, or the stream
cannot be read on. It keeps nothing but a frame header that a segment boundary cut in two.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

KINDS = {0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}
"""The kind of message each opcode starts (0 continues a message)."""
OPCODES = {"text": 1, "binary": 2, "close": 8, "ping": 9, "pong": 10}
"""Opcode of each message kind, as HAR's ``_webSocketMessages`` records it."""
_CLOSE_CODES = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status",
    1006: "abnormal closure",
    1007: "invalid payload",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
}


def close_note(payload: bytes) -> str:
    """``1000 normal closure``, ``1001 going away: bye`` or ``no status code``."""
    if len(payload) < 2:
        return "no status code"
    code = int.from_bytes(payload[:2], "big")
    name = _CLOSE_CODES.get(code, "application code" if code >= 3000 else "unknown code")
    reason = payload[2:].decode("utf-8", "replace")
    return f"{code} {name}: {reason}" if reason else f"{code} {name}"


def unmask(data: bytes, key: bytes, offset: int) -> bytes:
    """``data`` XOR the mask, starting ``offset`` bytes into the payload."""
    size = len(data)
    if not size:
        return data
    shift = offset % 4
    turned = key[shift:] + key[:shift]
    stream = turned * (size // 4 + 1)
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream[:size], "big")).to_bytes(
        size, "big"
    )


def _header_size(second: int) -> int:
    """A frame header's size, from its second byte (mask bit and length code)."""
    length = second & 0x7F
    size = 6 if second & 0x80 else 2
    return size + (2 if length == 126 else 8 if length == 127 else 0)


class FrameReader(ABC):
    """One direction's frames: the header being read, then the payload of the frame it began.

    The fields describe the frame being read: ``opcode``, ``fin``, ``rsv1`` (the compression
    bit), ``key`` (the mask, None when unmasked), ``remaining`` payload bytes and the
    ``offset`` reached in it. Once ``stopped`` nothing more is read.
    """

    __slots__ = (
        "fin",
        "head",
        "in_frame",
        "key",
        "offset",
        "opcode",
        "remaining",
        "rsv1",
        "stopped",
    )

    def __init__(self) -> None:
        self.head = bytearray()
        self.in_frame = False
        self.opcode = 0
        self.fin = False
        self.rsv1 = False
        self.key: bytes | None = None
        self.remaining = 0
        self.offset = 0
        self.stopped = False

    # --------------------------------------------------------------------------- hooks

    @abstractmethod
    def frame_started(self, ts: float) -> str | None:
        """A frame began (its fields are set): why it cannot be one of this stream's, or None
        when it can."""

    @abstractmethod
    def frame_payload(self, chunk: bytes) -> None:
        """The next piece of the frame's payload, as sent (masked when ``key`` is set)."""

    @abstractmethod
    def frame_ended(self, ts: float) -> None:
        """The frame's payload is all read."""

    @abstractmethod
    def frames_unreadable(self, why: str, ts: float) -> None:
        """No frame can be read past this point; the hook stops the reader."""

    # --------------------------------------------------------------------------- reading

    def read(self, data: bytes, ts: float) -> None:
        pos, size = 0, len(data)
        while pos < size and not self.stopped:
            if self.in_frame:
                take = min(self.remaining, size - pos)
                self.frame_payload(data[pos : pos + take])
                pos += take
                self.remaining -= take
                self.offset += take
                if self.remaining == 0:
                    self.in_frame = False
                    self.frame_ended(ts)
                continue
            if not self.head and size - pos >= 2:
                # The common case: the whole header is in this chunk, read it in place.
                need = _header_size(data[pos + 1])
                if size - pos >= need:
                    self._start(data[pos : pos + need], ts)
                    pos += need
                    continue
            head = self.head
            need = (2 if len(head) < 2 else _header_size(head[1])) - len(head)
            head += data[pos : pos + need]
            pos += min(need, size - pos)
            if len(head) >= 2 and len(head) == _header_size(head[1]):
                whole = bytes(head)
                head.clear()
                self._start(whole, ts)

    def can_skip(self, length: int) -> bool:
        """Whether ``length`` lost bytes fall inside the payload of the data frame being read,
        so that the next frame's start is still known."""
        return self.in_frame and length <= self.remaining and self.opcode < 8

    def skip(self, length: int, ts: float) -> None:
        """Step over ``length`` lost payload bytes (``can_skip`` said they can be)."""
        self.remaining -= length
        self.offset += length
        if self.remaining == 0:
            self.in_frame = False
            self.frame_ended(ts)

    def _start(self, head: bytes, ts: float) -> None:
        first, second = head[0], head[1]
        opcode = first & 0x0F
        length = second & 0x7F
        rest = head[2:]
        if length == 126:
            length, rest = int.from_bytes(rest[:2], "big"), rest[2:]
        elif length == 127:
            length, rest = int.from_bytes(rest[:8], "big"), rest[8:]
        self.opcode = opcode
        self.fin = fin = bool(first & 0x80)
        self.rsv1 = rsv1 = bool(first & 0x40)
        self.key = rest[:4] if second & 0x80 else None
        self.remaining = length
        self.offset = 0
        problem = _header_problem(first, opcode, fin, rsv1, length) or self.frame_started(ts)
        if problem is not None:
            self.frames_unreadable(problem, ts)
            return
        self.in_frame = True
        if length == 0:
            self.in_frame = False
            self.frame_ended(ts)


def _header_problem(first: int, opcode: int, fin: bool, rsv1: bool, length: int) -> str | None:
    """Why no frame of any stream can have this header (None when one can)."""
    if first & 0x30:
        return "a frame uses reserved bits no negotiated extension defines"
    if opcode not in KINDS and opcode != 0:
        return f"a frame has the reserved opcode {opcode}"
    if length >> 63:
        return "a frame's length does not fit in 63 bits"
    if opcode >= 8 and (not fin or length > 125 or rsv1):
        return "a control frame is fragmented, compressed or longer than 125 bytes"
    return None
