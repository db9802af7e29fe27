"""HTTP/1.x decoding of one tapped connection, both directions, with h11.

h11 is a protocol *endpoint*: a server-side ``h11.Connection`` parses requests but will not parse
the next one until it has answered the last, and a client-side one only parses a response to a
request it sent itself. A tap is neither endpoint, so every message gets a fresh h11 connection:
server role for a request; client role for a response, after "sending" it a stand-in request
with the real method (HEAD and CONNECT change the response's framing) and the real upgrade
proposal (so that h11 accepts a 101). Each direction has its own ``ByteReader``; where each side
stands (in a message, scanning, waiting for a switch) is ``Http1State``'s, changed only through
its table of transitions.

Responses pair with requests in order (HTTP/1.x has no other way); a response seen with no
request waiting (a connection joined mid-stream) gets a stand-in request marked incomplete. A
``101 Switching Protocols`` hands the connection to the decoder the hand-off hooks name.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence

import h11

from tui.model.byte_reader import ByteReader
from tui.model.decoder import Direction, ExchangeSink, ProtocolDecoder, Switch
from tui.model.flows import Connection, Exchange, Message, Request, Response
from tui.model.handoff import Handoffs
from tui.model.http1_cache import Http1Cache
from tui.model.http1_fast import (
    RequestLine,
    SimpleRequest,
    SimpleResponse,
    StatusLine,
    read_request,
    read_response,
)
from tui.model.http1_framing import (
    MAX_HEAD,
    MAX_INFORMATIONAL,
    METHOD_PREFIX,
    REQUEST_LINE,
    REQUEST_START,
    STATUS_START,
    declared_length,
    failure_reason,
    framing_ambiguity,
    is_chunked,
    path_of,
    proposes_upgrade,
)
from tui.model.http1_state import Event, Http1State, Mode
from tui.model.tls import looks_like_tls_record

_MAX_FILLED_GAP = 1 << 20
"""A gap inside a Content-Length body up to this size is skipped over, keeping the framing."""
_MAX_ERRORS = 20

_SWITCHED = h11.SWITCHED_PROTOCOL
_TOO_MANY_INFORMATIONAL = (
    f"more than {MAX_INFORMATIONAL} informational (1xx) responses: only the first are kept"
)


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
        self.body_cap = body_cap
        self._on_request = on_request
        self._switch = switch
        self._cache = cache
        self._handoffs = handoffs
        self._in = ByteReader()
        self._out = ByteReader()
        self._state = Http1State(joined_late)
        self._awaiting: deque[Exchange] = deque()
        self._next_index = 0
        self._switch_pending: Exchange | None = None
        # Requests that proposed a protocol upgrade (their response may be a 101).
        self._upgrades: set[Exchange] = set()
        self._handed_to: ProtocolDecoder | None = None
        self._closed = False

    # --------------------------------------------------------------------------- input

    def feed(self, direction: Direction, data: bytes, ts: float, sink: ExchangeSink) -> None:
        if self.receive(direction, data, ts):
            self.decode(ts, sink, direction)

    def receive(self, direction: Direction, data: bytes, ts: float) -> bool:
        """Buffer ``data`` without decoding it yet; False when the side is not HTTP any more."""
        if direction == "in":
            if self._state.client == "raw":
                return False
            reader = self._in
        else:
            if self._state.server == "raw":
                return False
            reader = self._out
        reader.buf += data
        reader.chunks.append((reader.base + len(reader.buf), ts))
        return True

    def gap(self, direction: Direction, length: int, ts: float, sink: ExchangeSink) -> None:
        reader = self._in if direction == "in" else self._out
        if self._mode(reader) == "raw":
            return
        self.decode(ts, sink)
        if self._handed_to is not None:
            # The bytes before the gap switched protocols: the gap is the next decoder's.
            self._handed_to.gap(direction, length, ts, sink)
            return
        part = "request" if direction == "in" else "response"
        note = f"{length:,} bytes of the {part} were not captured (a gap in the TCP stream)"
        if self._mode(reader) == "message" and reader.h11 is not None:
            exchange = reader.exchange
            if exchange is not None:
                mark_incomplete(exchange, note, sink)
                message = exchange.request if reader is self._in else exchange.response
                if message is not None and self._skip_gap_in_body(reader, message, length):
                    self.decode(ts, sink)
                    return
                if reader is self._out:
                    self._answered(exchange)
        elif reader is self._out and self._awaiting:
            # A whole response may be in the gap: the one waited for is at least in doubt.
            mark_incomplete(self._awaiting[0], f"a response may be lost: {note}", sink)
        reader.lose()
        self._event(reader, "bytes_lost")
        self.decode(ts, sink)

    def lost(self, note: str, ts: float, sink: ExchangeSink) -> None:
        """Bytes of both directions, how many unknown, will never arrive.

        What was in progress is incomplete, nothing buffered is joined with what comes next,
        and the requests still waiting stop waiting: their responses may be among the lost
        bytes, and pairing a later response with them would shift every pairing after it.
        A response that comes later without its request gets a stand-in request instead."""
        self.decode(ts, sink)
        if self._handed_to is not None:
            # The bytes before the loss switched protocols: the loss is the next decoder's.
            for direction in ("in", "out"):
                self._handed_to.gap(direction, 0, ts, sink)
            return
        for reader in (self._in, self._out):
            if self._mode(reader) == "raw":
                continue
            if reader.exchange is not None and reader.h11 is not None:
                mark_incomplete(reader.exchange, note, sink)
            reader.lose()
            self._event(reader, "bytes_lost")
        for exchange in self._awaiting:
            if exchange.finished is None:
                mark_incomplete(exchange, note, sink)
        self._awaiting.clear()
        self._upgrades.clear()
        if self._switch_pending is not None:
            # Whether the server declined is lost too: the client's side is scanned.
            self._switch_pending = None
            self._state.client_event("switch_declined")
        self.decode(ts, sink)

    def close(self, ts: float, sink: ExchangeSink) -> None:
        self._closed = True
        self._in.eof = True
        self._out.eof = True
        self.decode(ts, sink)

    # --------------------------------------------------------------------------- driving

    def decode(self, ts: float, sink: ExchangeSink, fed: Direction | None = None) -> None:
        """Decode what can be decoded; ``fed`` is the side that just got bytes, if only one."""
        conn = self.connection
        if conn.protocol == "unknown" and not self._find_first_message():
            return
        if conn.protocol != "http":
            return
        state = self._state
        # Requests first: a response can only pair with a request already seen. A response can
        # in turn unblock requests (a declined upgrade), hence the loop until nothing moves.
        # Each side is only run when something it waits for may have arrived.
        requests = fed != "out"
        responses = fed != "in"
        while True:
            if requests:
                self._pump_requests(ts, sink)
            waiting = self._out.h11 is None and self._out.has_unparsed()
            if not (responses or waiting):
                return
            before = state.client
            self._pump_responses(ts, sink)
            if state.client == before:
                return
            requests, responses = True, False

    def _find_first_message(self) -> bool:
        """Joined late: HTTP once either side shows a request or status line."""
        start = self._in
        if start.base == -1 and looks_like_tls_record(bytes(start.buf[1:4])):
            self.connection.protocol = "tls"
            self._state.both("not_http")
            for reader in (self._in, self._out):
                reader.lose()
            return True
        found_request = self._resync(self._in, REQUEST_START)
        found_response = self._resync(self._out, STATUS_START)
        if found_request or found_response:
            self.connection.protocol = "http"
            return True
        return False

    def _resync(self, reader: ByteReader, start: re.Pattern[bytes]) -> bool:
        if not reader.resync(start):
            return False
        self._event(reader, "start_found")
        return True

    def _mode(self, reader: ByteReader) -> Mode:
        return self._state.client if reader is self._in else self._state.server

    def _event(self, reader: ByteReader, event: Event) -> None:
        if reader is self._in:
            self._state.client_event(event)
        else:
            self._state.server_event(event)

    # --------------------------------------------------------------------------- requests

    def _pump_requests(self, ts: float, sink: ExchangeSink) -> None:
        reader = self._in
        state = self._state
        while True:
            if state.client == "resync" and not self._resync(reader, REQUEST_START):
                return
            if state.client != "message":
                return
            parser = reader.h11
            if parser is None:
                if not reader.has_unparsed():
                    return
                simple = read_request(reader.buf, reader.pos)
                if simple is not None:
                    self._simple_request(reader, simple, ts, sink)
                    continue
                parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
                reader.start_message(parser)
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._request_failed(reader, failure_reason(str(exc)), ts, sink)
                continue
            if event is h11.NEED_DATA:
                # A request cut short by the close stays incomplete: h11 is not told of the end.
                if not reader.feed_more(send_eof=False):
                    return
                continue
            if isinstance(event, h11.Data):
                exchange = reader.exchange
                if exchange is not None:
                    self._add_body(reader, exchange.request, event.data)
                    sink.exchange_changed(exchange)
            elif isinstance(event, h11.Request):
                self._request_started(reader, event, event.headers.raw_items(), sink)
            elif isinstance(event, h11.EndOfMessage):
                exchange = reader.exchange
                reader.end_message()
                self._request_ended(exchange, event.headers.raw_items(), ts, sink)
            else:
                return

    def _simple_request(
        self, reader: ByteReader, simple: SimpleRequest, ts: float, sink: ExchangeSink
    ) -> None:
        """A plain request head, read without h11, and its body when it is all there: the
        steps h11's events drive. A body still coming is h11's to read."""
        reader.start_simple_message()
        self._request_started(reader, simple, simple.headers, sink)
        exchange = reader.exchange
        if simple.body is None:
            reader.read_body_with(self._cache.request_body_parser(simple.framing), simple.end)
            return
        if simple.body and exchange is not None:
            self._add_body(reader, exchange.request, simple.body)
        reader.end_simple_message(simple.end)
        self._request_ended(exchange, (), ts, sink)

    def _request_started(
        self,
        reader: ByteReader,
        line: RequestLine,
        raw_headers: Iterable[tuple[bytes, bytes]],
        sink: ExchangeSink,
    ) -> None:
        reader.head_done = True
        target = line.target.decode("latin-1")
        headers = self._cache.headers(raw_headers)
        request = Request(
            headers=headers,
            method=self._cache.word(line.method),
            target=target,
            path=path_of(target, line.method),
            http_version=self._cache.word(line.http_version),
        )
        upgrade = False
        for name, value in headers:
            size = len(name)
            if size == 4 and not request.host and name.lower() == "host":
                request.host = value
            elif size == 7 and name.lower() == "upgrade":
                upgrade = True
        exchange = self._new_exchange(request, reader.ts_at(reader.pos))
        ambiguity = framing_ambiguity(headers)
        if ambiguity is not None:
            exchange.notes.append(f"request: {ambiguity}")
        if upgrade and proposes_upgrade(request):
            self._upgrades.add(exchange)
        reader.exchange = exchange
        sink.exchange_started(exchange)
        if self._on_request is not None:
            self._on_request(exchange)

    def _request_ended(
        self,
        exchange: Exchange | None,
        raw_trailers: Sequence[tuple[bytes, bytes]],
        ts: float,
        sink: ExchangeSink,
    ) -> None:
        if exchange is None:
            return
        request = exchange.request
        request.complete = True
        if raw_trailers:
            request.trailers = self._cache.headers(raw_trailers)
        exchange.request_finished = ts
        sink.exchange_changed(exchange)
        if request.method == "CONNECT" or exchange in self._upgrades:
            # What follows is HTTP again only if the server declines; wait for its answer.
            self._state.client_event("switch_requested")
            self._switch_pending = exchange

    def _request_failed(
        self, reader: ByteReader, reason: str, ts: float, sink: ExchangeSink
    ) -> None:
        exchange = reader.exchange
        if exchange is not None:
            exchange.error = f"malformed request: {reason}"
            sink.exchange_changed(exchange)
        elif METHOD_PREFIX.match(reader.buf, reader.pos, reader.pos + 21):
            # A request line with a bad head: keep what its first line says, and pair it (the
            # server most likely answers it with a 400).
            line = bytes(reader.buf[reader.pos : reader.pos + 200]).split(b"\n", 1)[0]
            words = line.decode("latin-1").strip().split(" ")
            target = words[1] if len(words) > 1 else ""
            request = Request(method=words[0], target=target, path=path_of(target, b""))
            exchange = self._new_exchange(request, reader.ts_at(reader.pos))
            exchange.error = f"malformed request: {reason}"
            sink.exchange_started(exchange)
        else:
            self._note_junk("client", reason)
        reader.abandon_message(REQUEST_LINE)
        self._event(reader, "message_malformed")

    def _note_junk(self, side: str, reason: str) -> None:
        errors = self.connection.errors
        if len(errors) < _MAX_ERRORS:
            errors.append(f"the {side} sent something that is not HTTP: {reason}")

    def _new_exchange(self, request: Request, started: float) -> Exchange:
        conn = self.connection
        exchange = Exchange(key=conn.key, index=self._next_index, request=request, started=started)
        self._next_index += 1
        conn.exchanges.append(exchange)
        self._awaiting.append(exchange)
        return exchange

    # --------------------------------------------------------------------------- responses

    def _pump_responses(self, ts: float, sink: ExchangeSink) -> None:
        reader = self._out
        state = self._state
        while True:
            if state.server == "resync" and not self._resync(reader, STATUS_START):
                return
            if state.server != "message":
                return
            parser = reader.h11
            if parser is None:
                if not reader.has_unparsed():
                    return
                exchange = self._exchange_to_answer(ts, sink)
                if exchange is None:
                    return
                upgrade = exchange in self._upgrades
                method = exchange.request.method
                simple = None if upgrade else read_response(reader.buf, reader.pos, method)
                if simple is not None:
                    self._simple_response(reader, exchange, simple, ts, sink)
                    continue
                parser = self._cache.response_parser(method, upgrade)
                reader.start_message(parser)
                reader.exchange = exchange
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._response_failed(reader, failure_reason(str(exc)), sink)
                continue
            if event is h11.NEED_DATA:
                if not reader.feed_more(send_eof=True):
                    return
                continue
            exchange = reader.exchange
            assert exchange is not None
            if isinstance(event, h11.Data):
                if exchange.response is not None:
                    self._add_body(reader, exchange.response, event.data)
                sink.exchange_changed(exchange)
            elif isinstance(event, (h11.Response, h11.InformationalResponse)):
                self._response_head(reader, exchange, event, event.headers.raw_items(), ts, sink)
                if parser.their_state is _SWITCHED:
                    self._switched(exchange, ts, sink)
                    return
            elif isinstance(event, h11.EndOfMessage):
                reader.end_message()
                self._response_ended(exchange, event.headers.raw_items(), ts, sink)
            else:
                return

    def _simple_response(
        self,
        reader: ByteReader,
        exchange: Exchange,
        simple: SimpleResponse,
        ts: float,
        sink: ExchangeSink,
    ) -> None:
        """A plain final response, read as a request is (``_simple_request``)."""
        reader.start_simple_message()
        self._response_head(reader, exchange, simple, simple.headers, ts, sink)
        if simple.body is None:
            parser = self._cache.response_body_parser(exchange.request.method, simple.framing)
            reader.read_body_with(parser, simple.end)
            reader.exchange = exchange
            return
        response = exchange.response
        if simple.body and response is not None:
            self._add_body(reader, response, simple.body)
        reader.end_simple_message(simple.end)
        self._response_ended(exchange, (), ts, sink)

    def _exchange_to_answer(self, ts: float, sink: ExchangeSink) -> Exchange | None:
        """The exchange the next response belongs to; None to wait for its request."""
        if self._awaiting:
            return self._awaiting[0]
        if self._request_head_pending() and not self._closed:
            return None
        # Nothing asked for this response: we joined late or the request was lost.
        exchange = self._new_exchange(Request(), self._out.ts_at(self._out.pos))
        exchange.incomplete = True
        sink.exchange_started(exchange)
        return exchange

    def _request_head_pending(self) -> bool:
        """Bytes of a request whose head is not complete yet are waiting on the client side."""
        requests = self._in
        if self._state.client != "message":
            return False
        if requests.h11 is None:
            return requests.has_unparsed()
        return not requests.head_done

    def _response_head(
        self,
        reader: ByteReader,
        exchange: Exchange,
        line: StatusLine,
        raw_headers: Iterable[tuple[bytes, bytes]],
        ts: float,
        sink: ExchangeSink,
    ) -> None:
        status = line.status_code
        response = Response(
            headers=self._cache.headers(raw_headers),
            status=status,
            reason=self._cache.word(line.reason),
            http_version=self._cache.word(line.http_version),
        )
        if status < 200 and status != 101:
            response.complete = True
            if len(exchange.informational) < MAX_INFORMATIONAL:
                exchange.informational = (*exchange.informational, response)
            elif _TOO_MANY_INFORMATIONAL not in exchange.notes:
                exchange.notes.append(_TOO_MANY_INFORMATIONAL)
        else:
            ambiguity = framing_ambiguity(response.headers)
            if ambiguity is not None:
                exchange.notes.append(f"response: {ambiguity}")
            reader.head_done = True
            exchange.response = response
            exchange.response_started = (
                reader.ts_at(reader.pos) if not exchange.informational else ts
            )
            self.connection.last_status = status
        sink.exchange_changed(exchange)

    def _response_ended(
        self,
        exchange: Exchange,
        raw_trailers: Sequence[tuple[bytes, bytes]],
        ts: float,
        sink: ExchangeSink,
    ) -> None:
        response = exchange.response
        if response is not None:
            response.complete = True
            if raw_trailers:
                response.trailers = self._cache.headers(raw_trailers)
        exchange.finished = ts
        self._answered(exchange)
        sink.exchange_changed(exchange)

    def _response_failed(self, reader: ByteReader, reason: str, sink: ExchangeSink) -> None:
        exchange = reader.exchange
        if reader.eof_sent:
            if exchange is not None:
                exchange.error = "the connection closed before the response was complete"
        elif reader.head_done or reader.buf.startswith(b"HTTP/", reader.pos):
            if exchange is not None:
                exchange.error = f"malformed response: {reason}"
        else:
            # Not a response at all: the exchange keeps waiting for one.
            self._note_junk("server", reason)
            if exchange is not None and exchange.response is None:
                exchange = None
        if exchange is not None:
            self._answered(exchange)
            sink.exchange_changed(exchange)
        reader.abandon_message(STATUS_START)
        self._event(reader, "message_malformed")

    def _answered(self, exchange: Exchange) -> None:
        if self._awaiting and self._awaiting[0] is exchange:
            self._awaiting.popleft()
        elif exchange in self._awaiting:
            self._awaiting.remove(exchange)
        self._upgrades.discard(exchange)
        if self._switch_pending is exchange:
            # The server declined the upgrade: the client's bytes are HTTP again.
            self._switch_pending = None
            self._state.client_event("switch_declined")

    def _switched(self, exchange: Exchange, ts: float, sink: ExchangeSink) -> None:
        exchange.upgraded = True
        exchange.finished = ts
        if exchange.response is not None:
            exchange.response.complete = True
        self._switch_pending = None
        self._answered(exchange)
        self._state.both("protocol_switched")
        following = self._handoffs.for_upgrade(self.connection, exchange)
        # What each side sent past the switch point is the next protocol's first bytes.
        leftovers: list[tuple[Direction, bytes, float]] = [
            ("in", *self._in.unparsed()),
            ("out", *self._out.unparsed()),
        ]
        for reader in (self._in, self._out):
            reader.lose()
        sink.exchange_changed(exchange)
        if following is None:
            return
        self._handed_to = following
        self._switch(following)
        for direction, data, at in sorted(leftovers, key=lambda leftover: leftover[2]):
            if data:
                following.feed(direction, data, at, sink)

    # --------------------------------------------------------------------------- bodies & gaps

    def _add_body(self, reader: ByteReader, message: Message, data: bytes) -> None:
        reader.body_seen += len(data)
        message.body_length += len(data)
        if reader.store_body and len(message.body) < self.body_cap:
            message.body += data[: self.body_cap - len(message.body)]

    def _skip_gap_in_body(self, reader: ByteReader, message: Message, length: int) -> bool:
        """Step over a gap that falls inside a body whose length is known; True if done."""
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
        if reader is self._out and message is not None and not is_chunked(message):
            # Read-until-close body: the lost bytes are only counted.
            reader.store_body = False
            message.body_length += length
            return True
        return False


_MAX_NOTES = 5


def mark_incomplete(exchange: Exchange, note: str, sink: ExchangeSink) -> None:
    """Bytes of ``exchange`` were lost; ``note`` says how (a few notes say it: a flood of gaps
    on one exchange would not say more)."""
    exchange.incomplete = True
    if note not in exchange.notes and len(exchange.notes) < _MAX_NOTES:
        exchange.notes.append(note)
    sink.exchange_changed(exchange)
