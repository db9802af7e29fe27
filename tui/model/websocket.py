"""WebSocket decoding of one tapped connection after its ``101 Switching Protocols``.

Frames are read in both directions (RFC 6455): masking removed, fragments joined into messages,
``permessage-deflate`` (RFC 7692) inflated with the parameters the server accepted, per
direction (with context takeover one inflater lives as long as the connection; without, each
message gets a fresh one). Control frames (ping, pong, close) are messages of their own; a
close carries its code and reason in the message's note. Messages go to the ``messages`` of the
exchange that switched protocols.

Like every decoder here it takes values and returns nothing but changes to the flow model: it
never raises on input, keeps at most a frame header and each message's first ``message_cap``
bytes, and never joins bytes across a loss. A loss inside a frame whose length is known is
stepped over (the message it cuts is marked, and a compressed direction with context takeover
stops inflating, since its window is gone); anywhere else the next frame boundary cannot be
known, so that direction stops being decoded, with a note saying so.
"""

from __future__ import annotations

import zlib
from typing import Protocol

from agent.events import Direction
from tui.model.flows import Connection, Exchange, Response, StreamMessage

MESSAGE_CAP = 65_536
"""Bytes of each message kept (after unmasking and inflating); ``length`` has the true size."""
MAX_MESSAGES = 5_000
"""Messages kept per connection; past it the oldest are dropped (and counted in a note)."""
MAX_BYTES = 4 << 20
"""Bytes of message data kept per connection, likewise."""
INFLATE_LIMIT = 16 << 20
"""Most bytes one compressed message is inflated to (a small frame can inflate to gigabytes)."""

_INFLATE_STEP = 65_536
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
"""What a sender strips from the end of every compressed message (RFC 7692, 7.2.1)."""
_KINDS = {0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}
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
_SIDE_NAMES = {"in": "client → server", "out": "server → client"}


class ExchangeChanged(Protocol):
    """Told when an exchange got new messages or notes (the store's change record)."""

    def exchange_changed(self, exchange: Exchange) -> None: ...


def switches_to_websocket(exchange: Exchange) -> bool:
    """Whether ``exchange`` is a ``101`` that switched the connection to WebSocket."""
    response = exchange.response
    if response is None or response.status != 101:
        return False
    upgrade = response.header("upgrade") or exchange.request.header("upgrade") or ""
    return "websocket" in upgrade.lower()


def after_upgrade(connection: Connection, exchange: Exchange) -> WebSocketDecoder | None:
    """The decoder for what follows ``exchange``'s ``101`` when it switched to WebSocket (the
    connection is then marked ``ws``); None for any other protocol."""
    if not switches_to_websocket(exchange):
        return None
    connection.protocol = "ws"
    return WebSocketDecoder(exchange)


def deflate_takeover(response: Response) -> dict[Direction, bool] | None:
    """Context takeover per direction if the server accepted ``permessage-deflate``, else None.

    ``in`` is the client's messages (``client_no_context_takeover``), ``out`` the server's.
    """
    for value in response.header_values("sec-websocket-extensions"):
        for offer in value.split(","):
            name, *params = (part.strip().lower() for part in offer.split(";"))
            if name != "permessage-deflate":
                continue
            names = {param.split("=", 1)[0].strip() for param in params}
            return {
                "in": "client_no_context_takeover" not in names,
                "out": "server_no_context_takeover" not in names,
            }
    return None


def close_note(payload: bytes) -> str:
    """``1000 normal closure``, ``1001 going away: bye`` or ``no status code``."""
    if len(payload) < 2:
        return "no status code"
    code = int.from_bytes(payload[:2], "big")
    name = _CLOSE_CODES.get(code, "application code" if code >= 3000 else "unknown code")
    reason = payload[2:].decode("utf-8", "replace")
    return f"{code} {name}: {reason}" if reason else f"{code} {name}"


def _unmask(data: bytes, key: bytes, offset: int) -> bytes:
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


class _Message:
    """A data message being received: its frames' payloads, unmasked and inflated."""

    __slots__ = ("compressed", "cut", "data", "kind", "length", "note", "too_large")

    def __init__(self, kind: str, compressed: bool) -> None:
        self.kind = kind
        self.compressed = compressed
        self.data = bytearray()
        self.length = 0
        self.cut = False
        self.too_large = False
        self.note = ""


class _Side:
    """One direction: where its frame stream stands."""

    __slots__ = (
        "control",
        "direction",
        "fin",
        "head",
        "in_frame",
        "inflate_lost",
        "inflater",
        "key",
        "message",
        "offset",
        "opcode",
        "remaining",
        "rsv1",
        "stopped",
        "takeover",
    )

    def __init__(self, direction: Direction, takeover: bool | None) -> None:
        self.direction: Direction = direction
        self.takeover = takeover
        """None: no compression was negotiated; else whether the inflater's window carries over
        from one message to the next."""
        self.head = bytearray()
        self.in_frame = False
        self.opcode = 0
        self.fin = False
        self.rsv1 = False
        self.key: bytes | None = None
        self.remaining = 0
        self.offset = 0
        self.control = bytearray()
        self.message: _Message | None = None
        self.inflater: zlib._Decompress | None = None
        self.inflate_lost = False
        """A loss took bytes the inflater's window needed: compressed messages cannot be read."""
        self.stopped = False

    def header_size(self) -> int:
        """Bytes the frame header in ``head`` needs (2 until its first two bytes are in)."""
        return 2 if len(self.head) < 2 else _header_size(self.head[1])


def _header_size(second: int) -> int:
    """A frame header's size, from its second byte (mask bit and length code)."""
    length = second & 0x7F
    size = 6 if second & 0x80 else 2
    return size + (2 if length == 126 else 8 if length == 127 else 0)


class WebSocketDecoder:
    """Decodes both directions of a WebSocket connection into ``exchange.messages``."""

    def __init__(
        self,
        exchange: Exchange,
        message_cap: int = MESSAGE_CAP,
        max_messages: int = MAX_MESSAGES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.exchange = exchange
        self.message_cap = message_cap
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._kept = 0
        takeover = None if exchange.response is None else deflate_takeover(exchange.response)
        self._sides = {
            "in": _Side("in", None if takeover is None else takeover["in"]),
            "out": _Side("out", None if takeover is None else takeover["out"]),
        }
        self._dropped = 0

    # --------------------------------------------------------------------------- input

    def feed(self, direction: Direction, data: bytes, ts: float, sink: ExchangeChanged) -> None:
        side = self._sides[direction]
        before = len(self.exchange.messages) + self._dropped
        pos, size = 0, len(data)
        while pos < size and not side.stopped:
            if side.in_frame:
                take = min(side.remaining, size - pos)
                self._payload(side, data[pos : pos + take])
                pos += take
                side.remaining -= take
                side.offset += take
                if side.remaining == 0:
                    self._frame_ended(side, ts)
                continue
            if not side.head and size - pos >= 2:
                # The common case: the whole header is in this chunk, read it in place.
                need = _header_size(data[pos + 1])
                if size - pos >= need:
                    self._frame_started(side, data[pos : pos + need], ts)
                    pos += need
                    continue
            need = side.header_size() - len(side.head)
            side.head += data[pos : pos + need]
            pos += min(need, size - pos)
            if len(side.head) >= 2 and len(side.head) == side.header_size():
                head = bytes(side.head)
                side.head.clear()
                self._frame_started(side, head, ts)
        if side.stopped or len(self.exchange.messages) + self._dropped != before:
            sink.exchange_changed(self.exchange)

    def gap(self, direction: Direction, length: int, ts: float, sink: ExchangeChanged) -> None:
        side = self._sides[direction]
        if side.stopped:
            return
        self.exchange.incomplete = True
        if side.in_frame and length <= side.remaining and side.opcode < 8:
            # The next frame starts right after this one, whose length is known: step over.
            self._lose_in_message(side)
            if side.message is not None and not side.message.compressed:
                side.message.length += length
            side.remaining -= length
            side.offset += length
            if side.remaining == 0:
                self._frame_ended(side, ts)
        else:
            self._stop(side, f"{length:,} bytes were lost where no frame boundary is known", ts)
        sink.exchange_changed(self.exchange)

    def close(self, ts: float, sink: ExchangeChanged) -> None:
        changed = False
        for side in self._sides.values():
            message = side.message
            if message is not None and not side.stopped:
                message.note = "the connection closed before this message ended"
                self._emit_data(side, message, ts)
                side.message = None
                changed = True
            side.stopped = True
        if changed:
            sink.exchange_changed(self.exchange)

    # --------------------------------------------------------------------------- frames

    def _frame_started(self, side: _Side, head: bytes, ts: float) -> None:
        first, second = head[0], head[1]
        opcode = first & 0x0F
        length = second & 0x7F
        rest = head[2:]
        if length == 126:
            length, rest = int.from_bytes(rest[:2], "big"), rest[2:]
        elif length == 127:
            length, rest = int.from_bytes(rest[:8], "big"), rest[8:]
        side.opcode = opcode
        side.fin = bool(first & 0x80)
        side.rsv1 = bool(first & 0x40)
        side.key = rest[:4] if second & 0x80 else None
        side.remaining = length
        side.offset = 0
        problem = self._frame_problem(side, first, length)
        if problem is not None:
            self._stop(side, problem, ts)
            return
        side.in_frame = True
        if opcode >= 8:
            side.control.clear()
        elif opcode != 0:
            side.message = _Message(_KINDS[opcode], side.rsv1)
            if side.rsv1:
                self._start_inflating(side, side.message)
        if length == 0:
            self._frame_ended(side, ts)

    def _frame_problem(self, side: _Side, first: int, length: int) -> str | None:
        """Why this frame header cannot be a frame of this stream (None when it can)."""
        opcode = side.opcode
        if first & 0x30:
            return "a frame uses reserved bits no negotiated extension defines"
        if opcode not in _KINDS and opcode != 0:
            return f"a frame has the reserved opcode {opcode}"
        if length >> 63:
            return "a frame's length does not fit in 63 bits"
        if opcode >= 8:
            if not side.fin or length > 125 or side.rsv1:
                return "a control frame is fragmented, compressed or longer than 125 bytes"
            return None
        if opcode == 0:
            if side.message is None:
                return "a continuation frame comes with no message to continue"
            if side.rsv1:
                return "a continuation frame has the compression bit set"
            return None
        if side.message is not None:
            return "a new message starts before the fragmented one before it ended"
        if side.rsv1 and side.takeover is None:
            return "a message is marked compressed, but no compression was negotiated"
        return None

    def _payload(self, side: _Side, chunk: bytes) -> None:
        if side.opcode >= 8:
            side.control += chunk if side.key is None else _unmask(chunk, side.key, side.offset)
            return
        message = side.message
        if message is None or message.cut:
            if message is not None:
                message.length += len(chunk)
            return
        if message.compressed:
            plain = chunk if side.key is None else _unmask(chunk, side.key, side.offset)
            self._inflate(side, message, plain)
            return
        message.length += len(chunk)
        room = self.message_cap - len(message.data)
        if room > 0:
            kept = chunk[:room]
            message.data += kept if side.key is None else _unmask(kept, side.key, side.offset)

    def _frame_ended(self, side: _Side, ts: float) -> None:
        side.in_frame = False
        if side.opcode >= 8:
            payload = bytes(side.control)
            kind = _KINDS[side.opcode]
            if kind == "close":
                self._add(
                    StreamMessage(
                        side.direction, ts, kind, payload[2:], len(payload), close_note(payload)
                    )
                )
            else:
                self._add(StreamMessage(side.direction, ts, kind, payload, len(payload)))
            return
        message = side.message
        if not side.fin or message is None:
            return
        side.message = None
        if message.compressed and not message.cut:
            self._inflate(side, message, _DEFLATE_TAIL)
        if message.compressed and not side.takeover:
            side.inflater = None
        self._emit_data(side, message, ts)

    # --------------------------------------------------------------------------- compression

    def _start_inflating(self, side: _Side, message: _Message) -> None:
        if side.inflate_lost:
            message.cut = True
            message.note = "compressed with a window lost to an earlier gap: not decoded"
        elif side.inflater is None:
            side.inflater = zlib.decompressobj(-zlib.MAX_WBITS)

    def _inflate(self, side: _Side, message: _Message, plain: bytes) -> None:
        inflater = side.inflater
        if inflater is None or message.cut:
            return
        try:
            while plain:
                out = inflater.decompress(plain, _INFLATE_STEP)
                plain = inflater.unconsumed_tail
                message.length += len(out)
                room = self.message_cap - len(message.data)
                if room > 0:
                    message.data += out[:room]
                if message.length > INFLATE_LIMIT:
                    self._inflate_failed(side, message, f"inflates past {INFLATE_LIMIT:,} bytes")
                    return
        except zlib.error as error:
            self._inflate_failed(side, message, f"does not inflate ({error})")

    def _inflate_failed(self, side: _Side, message: _Message, why: str) -> None:
        message.cut = True
        message.note = f"compressed message {why}; kept as far as inflated"
        side.inflater = None
        if side.takeover:
            # Later messages refer back into this one's window, which is now unknown.
            side.inflate_lost = True

    # --------------------------------------------------------------------------- losses

    def _lose_in_message(self, side: _Side) -> None:
        message = side.message
        if message is None:
            return
        if not message.cut:
            message.cut = True
            message.note = "cut by a loss: only its beginning is kept"
        if message.compressed:
            side.inflater = None
            if side.takeover:
                side.inflate_lost = True

    def _stop(self, side: _Side, why: str, ts: float) -> None:
        message = side.message
        if message is not None:
            message.cut = True
            message.note = message.note or "cut: the stream stopped being readable"
            self._emit_data(side, message, ts)
            side.message = None
        side.stopped = True
        self.exchange.notes.append(
            f"WebSocket {_SIDE_NAMES[side.direction]}: {why}; the rest is not decoded"
        )

    # --------------------------------------------------------------------------- output

    def _emit_data(self, side: _Side, message: _Message, ts: float) -> None:
        note = message.note
        if message.compressed and not note:
            note = "compressed"
        self._add(
            StreamMessage(
                side.direction, ts, message.kind, bytes(message.data), message.length, note
            )
        )

    def _add(self, message: StreamMessage) -> None:
        messages = self.exchange.messages
        messages.append(message)
        self._kept += len(message.data)
        if len(messages) <= self.max_messages and self._kept <= self.max_bytes:
            return
        # Drop the oldest quarter (by count and by bytes) at once: one list shift per many adds.
        count_goal = self.max_messages * 3 // 4
        bytes_goal = self.max_bytes * 3 // 4
        drop = 0
        while drop < len(messages) - 1 and (
            len(messages) - drop > count_goal or self._kept > bytes_goal
        ):
            self._kept -= len(messages[drop].data)
            drop += 1
        del messages[:drop]
        notes = self.exchange.notes
        if self._dropped:
            notes.remove(_dropped_note(self._dropped))
        self._dropped += drop
        notes.append(_dropped_note(self._dropped))


def _dropped_note(count: int) -> str:
    return f"{count:,} earlier WebSocket messages were not kept"
