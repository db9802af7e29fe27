"""The server side of an HTTP/1.x connection: its responses, each paired with the oldest
request still waiting for one.

A plain final response is read by the fast reader; anything else by a fresh client-role h11
connection that was first "sent" a stand-in request with the real method (HEAD and CONNECT change
the response's framing) and the real upgrade proposal (so that h11 accepts a 101). A response
seen with no request waiting (a connection joined mid-stream) gets a stand-in request marked
incomplete.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import h11

from tui.model.byte_reader import ByteReader
from tui.model.decoder import ExchangeSink
from tui.model.flows import Exchange, Request, Response
from tui.model.http1_cache import Http1Cache
from tui.model.http1_exchanges import ExchangeBook, MessageSide, mark_incomplete
from tui.model.http1_fast import SimpleResponse, StatusLine, read_response
from tui.model.http1_framing import (
    MAX_INFORMATIONAL,
    STATUS_START,
    failure_reason,
    framing_ambiguity,
)
from tui.model.http1_requests import RequestSide
from tui.model.http1_state import Http1State

_SWITCHED = h11.SWITCHED_PROTOCOL
_TOO_MANY_INFORMATIONAL = (
    f"more than {MAX_INFORMATIONAL} informational (1xx) responses: only the first are kept"
)


class ResponseSide(MessageSide):
    """Reads the server's bytes into the responses of the exchanges in ``book``."""

    start = STATUS_START
    is_client = False

    def __init__(
        self,
        reader: ByteReader,
        state: Http1State,
        book: ExchangeBook,
        cache: Http1Cache,
        requests: RequestSide,
    ) -> None:
        super().__init__(reader, state, book)
        self._cache = cache
        self._requests = requests
        self.closed = False
        """The connection closed: a response need not wait for a request still coming."""
        self.stand_in_note: str | None = None
        """Why a response gets a stand-in request now (the client's bytes were lost)."""
        self.in_doubt: str | None = None
        """A note for the next response paired with its request: one before it may be lost."""

    def pump(self, ts: float, sink: ExchangeSink, *, client_fed: bool) -> Exchange | None:
        """Read what responses can be read; the exchange a ``101`` answered, if one did (what
        follows it is another protocol, not for this side to read).

        ``client_fed``: the pump runs because the client's bytes moved on, so a response with
        no request to pair with keeps waiting for one (see ``_exchange_to_answer``)."""
        reader = self.reader
        state = self.state
        client = state.client
        while True:
            if state.client != client:
                # A response unblocked the client's side (an upgrade declined): its requests
                # are read before the next response pairs, as when the server's bytes come in
                # pieces. Read now, that response would find no request waiting.
                return None
            if state.server == "resync" and not self.resync():
                return None
            if state.server != "message":
                return None
            parser = reader.h11
            if parser is None:
                if not reader.has_unparsed():
                    return None
                if not self.book.awaiting:
                    first = self._first_bytes()
                    if first == "too few":
                        return None
                    if first == "junk":
                        # No request waits: a stand-in made for junk would stay waiting and
                        # take the next request's response. Skipped as junk anywhere is.
                        self.book.note_junk("server", "bytes where a status line should start")
                        reader.abandon_message(STATUS_START)
                        self.event("message_malformed")
                        continue
                exchange = self._exchange_to_answer(sink, client_fed)
                if exchange is None:
                    return None
                upgrade = exchange in self.book.upgrades
                method = exchange.request.method
                simple = None if upgrade else read_response(reader.buf, reader.pos, method)
                if simple is not None:
                    self._simple_response(exchange, simple, ts, sink)
                    continue
                parser = self._cache.response_parser(method, upgrade)
                reader.start_message(parser)
                reader.exchange = exchange
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._response_failed(failure_reason(str(exc)), sink)
                continue
            if event is h11.NEED_DATA:
                if not reader.feed_more(send_eof=True):
                    return None
                continue
            exchange = reader.exchange
            assert exchange is not None
            if isinstance(event, h11.Data):
                if exchange.response is not None:
                    self.book.add_body(reader, exchange.response, event.data)
                sink.exchange_changed(exchange)
            elif isinstance(event, (h11.Response, h11.InformationalResponse)):
                if isinstance(event, h11.InformationalResponse):
                    reader.informational_read()
                self._response_head(exchange, event, event.headers.raw_items(), ts, sink)
                if parser.their_state is _SWITCHED:
                    return exchange
            elif isinstance(event, h11.EndOfMessage):
                reader.end_message()
                self._response_ended(exchange, event.headers.raw_items(), ts, sink)
            else:
                return None

    def _simple_response(
        self, exchange: Exchange, simple: SimpleResponse, ts: float, sink: ExchangeSink
    ) -> None:
        """A plain final response, read as a plain request is."""
        reader = self.reader
        reader.start_simple_message()
        self._response_head(exchange, simple, simple.headers, ts, sink)
        if simple.body is None:
            parser = self._cache.response_body_parser(exchange.request.method, simple.framing)
            reader.read_body_with(parser, simple.end)
            reader.exchange = exchange
            return
        response = exchange.response
        if simple.body and response is not None:
            self.book.add_body(reader, response, simple.body)
        reader.end_simple_message(simple.end)
        self._response_ended(exchange, (), ts, sink)

    def waits_for_more_bytes(self) -> bool:
        """No request waits, and the server's next bytes are too few yet to tell a status line
        from junk: what they wait for is more of the server's bytes, not a request."""
        return not self.book.awaiting and self._first_bytes() == "too few"

    def _first_bytes(self) -> Literal["status line", "too few", "junk"]:
        """What the server's next bytes begin with (h11 takes nothing but a status line there,
        not even blank lines), decided on the same bytes however they were cut; at the end of
        the stream, a start too short to tell is junk (reported, not dropped unseen)."""
        reader = self.reader
        first = bytes(reader.buf[reader.pos : reader.pos + 5])
        if first == b"HTTP/":
            return "status line"
        return "too few" if b"HTTP/".startswith(first) and not reader.eof else "junk"

    def _exchange_to_answer(self, sink: ExchangeSink, client_fed: bool) -> Exchange | None:
        """The exchange the next response belongs to; None to wait for its request.

        Between the client's bytes a response gets no stand-in: its request may come later in
        the same bytes (after junk, say), and deciding on whatever part of them has been read
        would make the pairing depend on how they were cut. The server's next bytes, a loss of
        the client's bytes or the close decide, on all the client sent by then. (A gap in the
        server's own bytes waits behind the response: ``Http1Decoder`` holds it back.)"""
        if self.book.awaiting:
            exchange = self.book.awaiting[0]
            if self.in_doubt is not None:
                mark_incomplete(exchange, self.in_doubt, sink)
                self.in_doubt = None
            return exchange
        if client_fed or (self._requests.head_pending() and not self.closed):
            return None
        # Nothing asked for this response: we joined late or the request was lost.
        self.in_doubt = None
        exchange = self.book.new_exchange(Request(), self.reader.ts_at(self.reader.pos))
        exchange.incomplete = True
        if self.stand_in_note is not None:
            exchange.notes.append(self.stand_in_note)
        sink.exchange_started(exchange)
        return exchange

    def _response_head(
        self,
        exchange: Exchange,
        line: StatusLine,
        raw_headers: Iterable[tuple[bytes, bytes]],
        ts: float,
        sink: ExchangeSink,
    ) -> None:
        reader = self.reader
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
            self.book.connection.last_status = status
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
        self.book.answered(exchange)
        sink.exchange_changed(exchange)

    def _response_failed(self, reason: str, sink: ExchangeSink) -> None:
        reader = self.reader
        exchange = reader.exchange
        if reader.eof_sent:
            if exchange is not None:
                exchange.error = "the connection closed before the response was complete"
        elif reader.head_done or reader.buf.startswith(b"HTTP/", reader.pos):
            if exchange is not None:
                exchange.error = f"malformed response: {reason}"
        else:
            # Not a response at all: the exchange keeps waiting for one.
            self.book.note_junk("server", reason)
            if exchange is not None and exchange.response is None:
                exchange = None
        if exchange is not None:
            self.book.answered(exchange)
            sink.exchange_changed(exchange)
        reader.abandon_message(STATUS_START)
        self.event("message_malformed")
