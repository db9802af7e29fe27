"""HTTP/1.x decoding of one tapped connection, both directions, with h11.

h11 is a protocol *endpoint*: a server-side ``h11.Connection`` parses requests but will not parse
the next one until it has answered the last, and a client-side one only parses a response to a
request it sent itself. A tap is neither endpoint, so every message gets a fresh h11 connection:
the request side (``http1_requests``) and the response side (``http1_responses``) each read one
direction, sharing the exchanges and the pairing of responses with requests
(``http1_exchanges``). Where each side stands (in a message, scanning, waiting for a switch) is
``Http1State``'s, changed only through its table of transitions.

This decoder drives the two sides, and handles what concerns both: finding the first message of
a connection joined late, bytes lost to gaps, and a ``101 Switching Protocols`` that hands the
connection to the decoder the hand-off hooks name.

Nothing the server sent whole is dropped at a loss: a response waiting for its request when a
gap hits the server's side keeps its bytes (the gap, and what follows, wait behind it until it
is paired), and one waiting when the client's bytes are lost gets a stand-in request that says
its request may be lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from tui.model.byte_reader import ByteReader
from tui.model.decoder import Direction, ExchangeSink, ProtocolDecoder, Switch
from tui.model.flows import Connection, Exchange, Message
from tui.model.handoff import Handoffs
from tui.model.http1_cache import Http1Cache
from tui.model.http1_exchanges import ExchangeBook, MessageSide, mark_incomplete
from tui.model.http1_framing import declared_length, is_chunked
from tui.model.http1_requests import RequestSide
from tui.model.http1_responses import ResponseSide
from tui.model.http1_state import Http1State
from tui.model.tls import looks_like_tls_record

_MAX_FILLED_GAP = 1 << 20
"""A gap inside a Content-Length body up to this size is skipped over, keeping the framing."""

_Held = tuple[bytes | int, float]
"""The server's bytes (or a gap, as its length) held back, with their capture time."""


class Http1Decoder:
    """Decodes one connection's HTTP/1.x into its ``exchanges``, in place.

    ``joined_late``: the stream's start was not seen, so each side is scanned for the first
    line that may start a message, and the connection is HTTP once either side shows one.
    ``switch`` is called with the next decoder when a ``101`` hands the connection over.
    """

    def __init__(
        self,
        connection: Connection,
        *,
        joined_late: bool,
        switch: Switch,
        cache: Http1Cache,
        handoffs: Handoffs,
        body_cap: int = 65_536,
        on_request: Callable[[Exchange], None] | None = None,
    ) -> None:
        self.connection = connection
        self._switch = switch
        self._handoffs = handoffs
        self._state = Http1State(joined_late)
        self._book = ExchangeBook(connection, self._state, body_cap)
        self._requests = RequestSide(ByteReader(), self._state, self._book, cache, on_request)
        self._responses = ResponseSide(ByteReader(), self._state, self._book, cache, self._requests)
        self._handed_to: ProtocolDecoder | None = None
        # What the server sent after a gap while a response it had sent whole still waited for
        # its request: held back until that response is paired, so that neither is lost.
        self._held: deque[_Held] = deque()

    @property
    def body_cap(self) -> int:
        return self._book.body_cap

    def _side(self, direction: Direction) -> MessageSide:
        return self._requests if direction == "in" else self._responses

    # --------------------------------------------------------------------------- input

    def feed(self, direction: Direction, data: bytes, ts: float, sink: ExchangeSink) -> None:
        if direction == "out" and self._held:
            self._held.append((data, ts))
            # The server's next bytes decide for a response still waiting (see ResponseSide).
            self.decode(ts, sink)
        elif self.receive(direction, data, ts):
            self.decode(ts, sink, direction)
        self._release_held(ts, sink, client_fed=direction == "in")

    def receive(self, direction: Direction, data: bytes, ts: float) -> bool:
        """Buffer ``data`` without decoding it yet; False when the side is not HTTP any more."""
        side = self._side(direction)
        if side.mode == "raw":
            return False
        reader = side.reader
        reader.buf += data
        reader.chunks.append((reader.base + len(reader.buf), ts))
        return True

    def gap(self, direction: Direction, length: int, ts: float, sink: ExchangeSink) -> None:
        side = self._side(direction)
        if direction == "out" and self._held:
            self._held.append((length, ts))
            self.decode(ts, sink)
            self._release_held(ts, sink, client_fed=False)
            return
        if side.mode == "raw":
            return
        self.decode(ts, sink)
        if self._handed_to is not None:
            # The bytes before the gap switched protocols: the gap is the next decoder's.
            self._handed_to.gap(direction, length, ts, sink)
            return
        if direction == "out" and self._response_waits():
            # The server's bytes before the gap hold a response whose request is still being
            # read: losing them would lose it without a word, so the gap waits behind them.
            self._held.append((length, ts))
            return
        reader = side.reader
        part = "request" if direction == "in" else "response"
        note = f"{length:,} bytes of the {part} were not captured (a gap in the TCP stream)"
        if side.mode == "message" and reader.h11 is not None:
            exchange = reader.exchange
            if exchange is not None:
                mark_incomplete(exchange, note, sink)
                message = exchange.request if side is self._requests else exchange.response
                if message is not None and self._skip_gap_in_body(side, message, length):
                    self.decode(ts, sink)
                    return
                if side is self._responses:
                    self._book.answered(exchange)
        elif side is self._responses and self._book.awaiting:
            # A whole response may be in the gap: the one waited for is at least in doubt.
            mark_incomplete(self._book.awaiting[0], f"a response may be lost: {note}", sink)
        reader.lose()
        side.event("bytes_lost")
        if side is self._requests:
            # A response waiting for a request still being read gets a stand-in now.
            self._responses.stand_in_note = f"its request may be lost: {note}"
        self.decode(ts, sink)
        self._responses.stand_in_note = None
        self._release_held(ts, sink, client_fed=False)

    def lost(self, note: str, ts: float, sink: ExchangeSink) -> None:
        """Bytes of both directions, how many unknown, will never arrive.

        What was in progress is incomplete, nothing buffered is joined with what comes next,
        and the requests still waiting stop waiting: their responses may be among the lost
        bytes, and pairing a later response with them would shift every pairing after it.
        A response that comes later without its request gets a stand-in request instead."""
        self.decode(ts, sink)
        if self._handed_to is None:
            # The client's side first: a response read whole but waiting for a request still
            # being read gets a stand-in before the server's side loses what it holds.
            self._lose_side(self._requests, note, sink)
            self._responses.stand_in_note = f"its request may be lost: {note}"
            self.decode(ts, sink)
            self._release_held(ts, sink, client_fed=False)
            self._responses.stand_in_note = None
        if self._handed_to is not None:
            # The bytes before the loss switched protocols: the loss is the next decoder's.
            for direction in ("in", "out"):
                self._handed_to.gap(direction, 0, ts, sink)
            return
        self._lose_side(self._responses, note, sink)
        self._responses.in_doubt = None
        self._book.stop_waiting(note, sink)
        self.decode(ts, sink)

    def _lose_side(self, side: MessageSide, note: str, sink: ExchangeSink) -> None:
        if side.mode == "raw":
            return
        reader = side.reader
        if reader.exchange is not None and reader.h11 is not None:
            mark_incomplete(reader.exchange, note, sink)
        reader.lose()
        side.event("bytes_lost")

    def close(self, ts: float, sink: ExchangeSink) -> None:
        self._responses.closed = True
        if self._held:
            # What was held back is read before the end of the stream is: the close decides
            # for the response waiting, then the gap and what followed it come in turn.
            self.decode(ts, sink)
            self._release_held(ts, sink, client_fed=False)
        self._requests.reader.eof = True
        self._responses.reader.eof = True
        self.decode(ts, sink)

    # --------------------------------------------------------------------------- driving

    def decode(
        self,
        ts: float,
        sink: ExchangeSink,
        fed: Direction | None = None,
        *,
        client_fed: bool | None = None,
    ) -> None:
        """Decode what can be decoded; ``fed`` is the side that just got bytes, if only one.
        ``client_fed``: the client's bytes moved on (by default, when they are ``fed``)."""
        conn = self.connection
        if conn.protocol == "unknown" and not self._find_first_message():
            return
        if conn.protocol != "http":
            return
        state = self._state
        responses_reader = self._responses.reader
        # Requests first: a response can only pair with a request already seen. A response can
        # in turn unblock requests (a declined upgrade), hence the loop until nothing moves.
        # Each side is only run when something it waits for may have arrived.
        requests = fed != "out"
        responses = fed != "in"
        while True:
            if requests:
                self._requests.pump(ts, sink)
            waiting = responses_reader.h11 is None and responses_reader.has_unparsed()
            if not (responses or waiting):
                return
            before = state.client
            upgraded = self._responses.pump(
                ts, sink, client_fed=fed == "in" if client_fed is None else client_fed
            )
            if upgraded is not None:
                self._switched(upgraded, ts, sink)
            if state.client == before:
                return
            requests, responses = True, False

    def _find_first_message(self) -> bool:
        """Joined late: HTTP once either side shows a request or status line."""
        start = self._requests.reader
        if start.base == -1 and looks_like_tls_record(bytes(start.buf[1:4])):
            self.connection.protocol = "tls"
            self._state.both("not_http")
            for side in (self._requests, self._responses):
                side.reader.lose()
            return True
        found_request = self._requests.resync()
        found_response = self._responses.resync()
        if found_request or found_response:
            self.connection.protocol = "http"
            return True
        return False

    def _switched(self, exchange: Exchange, ts: float, sink: ExchangeSink) -> None:
        exchange.upgraded = True
        exchange.finished = ts
        if exchange.response is not None:
            exchange.response.complete = True
        self._book.switch_pending = None
        self._book.answered(exchange)
        self._state.both("protocol_switched")
        following = self._handoffs.for_upgrade(self.connection, exchange)
        # What each side sent past the switch point is the next protocol's first bytes.
        leftovers: list[tuple[Direction, bytes, float]] = [
            ("in", *self._requests.reader.unparsed()),
            ("out", *self._responses.reader.unparsed()),
        ]
        for side in (self._requests, self._responses):
            side.reader.lose()
        sink.exchange_changed(exchange)
        if following is None:
            return
        self._handed_to = following
        self._switch(following)
        for direction, data, at in sorted(leftovers, key=lambda leftover: leftover[2]):
            if data:
                following.feed(direction, data, at, sink)

    # --------------------------------------------------------------------------- gaps

    def _response_waits(self) -> bool:
        """The server's next response is buffered but waits for its request to be read (not
        for more of the server's bytes, which may be held)."""
        reader = self._responses.reader
        return (
            self.connection.protocol == "http"
            and self._responses.mode == "message"
            and reader.h11 is None
            and reader.has_unparsed()
            and not self._responses.waits_for_more_bytes()
        )

    def _release_held(self, ts: float, sink: ExchangeSink, *, client_fed: bool) -> None:
        """Once no response waits any more, read what the server sent after the gap.

        ``client_fed``: this happens while the client's bytes are read, so a response after
        the gap waits for its request as any response would (see ResponseSide)."""
        held = self._held
        while held and not self._response_waits():
            item, at = held.popleft()
            following = self._handed_to
            if following is not None:
                if isinstance(item, int):
                    following.gap("out", item, at, sink)
                else:
                    following.feed("out", item, at, sink)
                continue
            if isinstance(item, int):
                self._held_gap_reached(item, sink)
            elif not self.receive("out", item, at):
                continue
            # Decoded at ``ts`` whatever the pieces the client's bytes came in.
            self.decode(ts, sink, "out", client_fed=client_fed)

    def _held_gap_reached(self, length: int, sink: ExchangeSink) -> None:
        """The server's bytes before a held gap are read: the gap is applied where it was."""
        side = self._responses
        if side.mode == "raw":
            return
        reader = side.reader
        note = f"{length:,} bytes of the response were not captured (a gap in the TCP stream)"
        exchange = reader.exchange
        if side.mode == "message" and reader.h11 is not None and exchange is not None:
            mark_incomplete(exchange, note, sink)
            response = exchange.response
            if response is not None and self._skip_gap_in_body(side, response, length):
                return
            self._book.answered(exchange)
        else:
            # Which request is waiting by now depends on how far the client's bytes were read:
            # the doubt goes to the next response paired, whenever that is.
            side.in_doubt = f"a response may be lost: {note}"
        reader.lose()
        side.event("bytes_lost")

    def _skip_gap_in_body(self, side: MessageSide, message: Message, length: int) -> bool:
        """Step over a gap that falls inside a body whose length is known; True if done."""
        reader = side.reader
        if not reader.head_done or reader.h11 is None:
            return False
        length_known = declared_length(reader.exchange, message)
        if length_known is not None:
            remaining = length_known - reader.body_seen - (len(reader.buf) - reader.fed)
            if length > remaining or length > _MAX_FILLED_GAP:
                return False
            reader.store_body = False
            # Zeros stand in for the lost bytes so h11 keeps counting; they are not stored.
            reader.append(bytes(length), reader.chunks[-1][1] if reader.chunks else 0.0)
            return True
        if side is self._responses and message is not None and not is_chunked(message):
            # Read-until-close body: the lost bytes are only counted.
            reader.store_body = False
            message.body_length += length
            return True
        return False
