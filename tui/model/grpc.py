"""gRPC on top of HTTP/2: length-prefixed messages, their compression, and call status.

Each direction of a call is a stream of messages, each a 1-byte compressed flag and a 4-byte
big-endian length before the payload. The status comes in the trailers (``grpc-status``,
``grpc-message``), or in the only HEADERS of a "trailers-only" response.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from tui.model.flows import Exchange, StreamMessage

STATUS_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
_PREFIX = 5
MAX_MESSAGES = 1000
"""Messages kept per call; later ones are counted."""
_GRPC_PATH = re.compile(r"/[A-Za-z_][\w.]*/\w+\Z")
Direction = Literal["in", "out"]


def is_grpc(content_type: str | None) -> bool:
    return content_type is not None and content_type.lower().startswith("application/grpc")


def status_name(code: str) -> str:
    """``5`` -> ``NOT_FOUND``; a code outside the table is kept as sent."""
    code = code.strip()
    if code.isdigit() and int(code) < len(STATUS_NAMES):
        return STATUS_NAMES[int(code)]
    return code


def call_status(exchange: Exchange) -> tuple[str, str] | None:
    """(code, name) of a finished gRPC call, from its trailers or trailers-only headers."""
    response = exchange.response
    if response is None:
        return None
    for name, value in (*response.trailers, *response.headers):
        if name == "grpc-status":
            return value.strip(), status_name(value)
    return None


def call_message(exchange: Exchange) -> str | None:
    """``grpc-message``, percent-decoded as the protocol sends it."""
    response = exchange.response
    if response is None:
        return None
    for name, value in (*response.trailers, *response.headers):
        if name == "grpc-message":
            return unquote(value, errors="replace")
    return None


@dataclass(slots=True)
class SplitMessage:
    compressed: bool
    data: bytes
    """The payload as sent (still compressed when ``compressed``), capped."""
    length: int
    """Its true length on the wire."""


class MessageSplitter:
    """One direction of one call: bytes in, whole messages out; payloads kept up to ``cap``."""

    __slots__ = ("_cap", "_compressed", "_head", "_kept", "_left", "_length")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._head = bytearray()
        self._kept = bytearray()
        self._left = -1
        """Payload bytes still to come for the current message; -1 while reading a prefix."""
        self._length = 0
        self._compressed = False

    def feed(self, data: bytes | bytearray) -> list[SplitMessage]:
        out: list[SplitMessage] = []
        at = 0
        size = len(data)
        while at < size or self._left == 0:
            if self._left < 0:
                need = _PREFIX - len(self._head)
                self._head += data[at : at + need]
                at += need
                if len(self._head) < _PREFIX:
                    break
                self._compressed = bool(self._head[0] & 1)
                self._length = self._left = int.from_bytes(self._head[1:5], "big")
                self._head.clear()
                continue
            take = min(self._left, size - at)
            room = self._cap - len(self._kept)
            if room > 0:
                self._kept += data[at : at + min(take, room)]
            at += take
            self._left -= take
            if self._left == 0:
                out.append(SplitMessage(self._compressed, bytes(self._kept), self._length))
                self._kept.clear()
                self._left = -1
        return out

    @property
    def pending(self) -> bool:
        """A message began and did not end."""
        return self._left > 0 or bool(self._head)

    def cut(self) -> SplitMessage | None:
        """The message in progress, as far as it came (the stream ended or bytes were lost)."""
        if not self.pending:
            return None
        message = SplitMessage(self._compressed, bytes(self._kept), self._length)
        self._head.clear()
        self._kept.clear()
        self._left = -1
        return message


def split_exactly(body: bytes, cap: int) -> list[SplitMessage]:
    """The messages of ``body`` if it is exactly a run of them (flags 0 or 1), else []."""
    splitter = MessageSplitter(cap)
    at = 0
    while at + _PREFIX <= len(body):
        if body[at] > 1:
            return []
        at += _PREFIX + int.from_bytes(body[at + 1 : at + _PREFIX], "big")
    if at != len(body) or not body:
        return []
    return splitter.feed(body)


def decompress(data: bytes, encoding: str, cap: int) -> tuple[bytes, str]:
    """The payload of a compressed message, inflated up to ``cap``, and a note about it."""
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "deflate"):
        wbits = 31 if encoding == "gzip" else 15
        inflater = zlib.decompressobj(wbits)
        try:
            plain = inflater.decompress(data, cap)
        except zlib.error:
            return data, f"compressed ({encoding}), could not be inflated"
        return plain, f"compressed ({encoding}, {len(data)} bytes)"
    return data, f"compressed ({encoding or 'no grpc-encoding'}), shown as sent"


class GrpcCall:
    """The messages of one call, both directions, added to its exchange as each completes."""

    __slots__ = ("_cap", "_encodings", "_exchange", "_room", "_splitters", "dropped")

    def __init__(self, exchange: Exchange, cap: int) -> None:
        self._exchange = exchange
        self._cap = cap
        # Payload bytes this call may still keep: a long stream of large messages keeps its
        # first ones whole and then only their sizes.
        self._room = 4 * cap
        self._splitters = {"in": MessageSplitter(cap), "out": MessageSplitter(cap)}
        self._encodings = {"in": exchange.request.header("grpc-encoding") or "", "out": ""}
        self.dropped = 0
        """Messages past MAX_MESSAGES, counted but not kept."""

    def response_began(self) -> None:
        response = self._exchange.response
        if response is not None:
            self._encodings["out"] = response.header("grpc-encoding") or ""

    def feed(self, direction: Direction, data: bytes | bytearray, ts: float) -> None:
        for split in self._splitters[direction].feed(data):
            self._add(direction, split, ts, "")

    def cut(self, direction: Direction, ts: float, why: str) -> None:
        """That direction ends here: a message it was in the middle of is kept as cut."""
        split = self._splitters[direction].cut()
        if split is not None:
            self._add(direction, split, ts, why)

    def _add(self, direction: Direction, split: SplitMessage, ts: float, note: str) -> None:
        messages = self._exchange.messages
        if len(messages) >= MAX_MESSAGES:
            self.dropped += 1
            return
        data = split.data
        notes = [note] if note else []
        if split.compressed:
            data, compression = decompress(data, self._encodings[direction], self._cap)
            notes.insert(0, compression)
        if len(data) > self._room:
            data = data[: self._room]
        self._room -= len(data)
        if not split.compressed and len(data) < split.length:
            notes.append(f"first {len(data)} bytes kept")
        messages.append(StreamMessage(direction, ts, "grpc", data, split.length, "; ".join(notes)))


def messages_by_framing(
    exchange: Exchange, direction: Direction, body: bytes, ts: float, cap: int
) -> bool:
    """Joined late, a call's content-type may be a header never seen: a body that is exactly a
    run of gRPC messages, on a path that looks like ``/pkg.Service/Method`` (or an unknown one),
    is taken for one. True if it was."""
    target = exchange.request.target
    if target and not _GRPC_PATH.match(target):
        return False
    splits = split_exactly(body, cap)
    for split in splits:
        note = "taken for gRPC by its framing" + ("; compressed" if split.compressed else "")
        message = StreamMessage(direction, ts, "grpc", split.data, split.length, note)
        exchange.messages.append(message)
    return bool(splits)
