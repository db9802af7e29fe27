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

Reading the frames themselves (headers, masking, what no header may say) is
``websocket_frames``'; this module makes messages of them.
"""

from __future__ import annotations

import zlib
from typing import Protocol

from agent.events import Direction
from tui.model.flows import Connection, Exchange, Response, StreamMessage
from tui.model.websocket_frames import KINDS, OPCODES, FrameReader, close_note, unmask

__all__ = [
    "INFLATE_LIMIT",
    "MAX_BYTES",
    "MAX_MESSAGES",
    "MESSAGE_CAP",
    "OPCODES",
    "WebSocketDecoder",
    "after_upgrade",
    "close_note",
    "deflate_takeover",
    "switches_to_websocket",
]

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


class _Side(FrameReader):
    """One direction: the messages its frames make, as they come."""

    __slots__ = (
        "control",
        "decoder",
        "direction",
        "inflate_lost",
        "inflater",
        "message",
        "message_cap",
        "takeover",
    )

    def __init__(
        self, direction: Direction, takeover: bool | None, decoder: WebSocketDecoder
    ) -> None:
        super().__init__()
        self.direction: Direction = direction
        self.takeover = takeover
        """None: no compression was negotiated; else whether the inflater's window carries over
        from one message to the next."""
        self.decoder = decoder
        self.message_cap = decoder.message_cap
        self.control = bytearray()
        self.message: _Message | None = None
        self.inflater: zlib._Decompress | None = None
        self.inflate_lost = False
        """A loss took bytes the inflater's window needed: compressed messages cannot be read."""

    # --------------------------------------------------------------------------- frames

    def frame_started(self, ts: float) -> str | None:
        """Why the frame cannot come here in this stream's messages (None: it begins one, or
        continues the one begun)."""
        opcode = self.opcode
        if opcode >= 8:
            self.control.clear()
            return None
        if opcode == 0:
            if self.message is None:
                return "a continuation frame comes with no message to continue"
            if self.rsv1:
                return "a continuation frame has the compression bit set"
            return None
        if self.message is not None:
            return "a new message starts before the fragmented one before it ended"
        if self.rsv1 and self.takeover is None:
            return "a message is marked compressed, but no compression was negotiated"
        self.message = message = _Message(KINDS[opcode], self.rsv1)
        if self.rsv1:
            self._start_inflating(message)
        return None

    def frame_payload(self, chunk: bytes) -> None:
        if self.opcode >= 8:
            self.control += chunk if self.key is None else unmask(chunk, self.key, self.offset)
            return
        message = self.message
        if message is None or message.cut:
            if message is not None:
                message.length += len(chunk)
            return
        if message.compressed:
            plain = chunk if self.key is None else unmask(chunk, self.key, self.offset)
            self._inflate(message, plain)
            return
        message.length += len(chunk)
        room = self.message_cap - len(message.data)
        if room > 0:
            kept = chunk[:room]
            message.data += kept if self.key is None else unmask(kept, self.key, self.offset)

    def frame_ended(self, ts: float) -> None:
        if self.opcode >= 8:
            payload = bytes(self.control)
            kind = KINDS[self.opcode]
            if kind == "close":
                self.decoder.keep(
                    StreamMessage(
                        self.direction, ts, kind, payload[2:], len(payload), close_note(payload)
                    )
                )
            else:
                self.decoder.keep(StreamMessage(self.direction, ts, kind, payload, len(payload)))
            return
        message = self.message
        if not self.fin or message is None:
            return
        self.message = None
        if message.compressed and not message.cut:
            self._inflate(message, _DEFLATE_TAIL)
        if message.compressed and not self.takeover:
            self.inflater = None
        self.emit(message, ts)

    def frames_unreadable(self, why: str, ts: float) -> None:
        self.stop(why, ts)

    # --------------------------------------------------------------------------- compression

    def _start_inflating(self, message: _Message) -> None:
        if self.inflate_lost:
            message.cut = True
            message.note = "compressed with a window lost to an earlier gap: not decoded"
        elif self.inflater is None:
            self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)

    def _inflate(self, message: _Message, plain: bytes) -> None:
        inflater = self.inflater
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
                    self._inflate_failed(message, f"inflates past {INFLATE_LIMIT:,} bytes")
                    return
        except zlib.error as error:
            self._inflate_failed(message, f"does not inflate ({error})")

    def _inflate_failed(self, message: _Message, why: str) -> None:
        message.cut = True
        message.note = f"compressed message {why}; kept as far as inflated"
        self.inflater = None
        if self.takeover:
            # Later messages refer back into this one's window, which is now unknown.
            self.inflate_lost = True

    # --------------------------------------------------------------------------- losses

    def lose_in_message(self) -> None:
        """Bytes of the message being read were lost (its frame goes on after them)."""
        message = self.message
        if message is None:
            return
        if not message.cut:
            message.cut = True
            message.note = "cut by a loss: only its beginning is kept"
        if message.compressed:
            self.inflater = None
            if self.takeover:
                self.inflate_lost = True

    def stop(self, why: str, ts: float) -> None:
        """Nothing more of this direction can be read: ``why`` says so in the notes."""
        message = self.message
        if message is not None:
            message.cut = True
            message.note = message.note or "cut: the stream stopped being readable"
            self.emit(message, ts)
            self.message = None
        self.stopped = True
        self.decoder.exchange.notes.append(
            f"WebSocket {_SIDE_NAMES[self.direction]}: {why}; the rest is not decoded"
        )

    def emit(self, message: _Message, ts: float) -> None:
        note = message.note
        if message.compressed and not note:
            note = "compressed"
        self.decoder.keep(
            StreamMessage(
                self.direction, ts, message.kind, bytes(message.data), message.length, note
            )
        )


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
            "in": _Side("in", None if takeover is None else takeover["in"], self),
            "out": _Side("out", None if takeover is None else takeover["out"], self),
        }
        self._dropped = 0

    # --------------------------------------------------------------------------- input

    def feed(self, direction: Direction, data: bytes, ts: float, sink: ExchangeChanged) -> None:
        side = self._sides[direction]
        before = len(self.exchange.messages) + self._dropped
        side.read(data, ts)
        if side.stopped or len(self.exchange.messages) + self._dropped != before:
            sink.exchange_changed(self.exchange)

    def gap(self, direction: Direction, length: int, ts: float, sink: ExchangeChanged) -> None:
        side = self._sides[direction]
        if side.stopped:
            return
        self.exchange.incomplete = True
        if side.can_skip(length):
            # The next frame starts right after this one, whose length is known: step over.
            side.lose_in_message()
            if side.message is not None and not side.message.compressed:
                side.message.length += length
            side.skip(length, ts)
        else:
            side.stop(f"{length:,} bytes were lost where no frame boundary is known", ts)
        sink.exchange_changed(self.exchange)

    def close(self, ts: float, sink: ExchangeChanged) -> None:
        changed = False
        for side in self._sides.values():
            message = side.message
            if message is not None and not side.stopped:
                message.note = "the connection closed before this message ended"
                side.emit(message, ts)
                side.message = None
                changed = True
            side.stopped = True
        if changed:
            sink.exchange_changed(self.exchange)

    # --------------------------------------------------------------------------- output

    def keep(self, message: StreamMessage) -> None:
        """Add a message to the exchange's, dropping the oldest past the caps."""
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
