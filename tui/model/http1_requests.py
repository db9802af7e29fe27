"""The client side of an HTTP/1.x connection: its requests, each read into a new exchange.

A plain head is read by the fast reader; anything else by a fresh server-role h11 connection
(a tap is not the server, so it never answers, and h11 would not read a second request on one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import h11

from tui.model.byte_reader import ByteReader
from tui.model.decoder import ExchangeSink
from tui.model.flows import Exchange, Request
from tui.model.http1_cache import Http1Cache
from tui.model.http1_exchanges import ExchangeBook, MessageSide
from tui.model.http1_fast import RequestLine, SimpleRequest, read_request
from tui.model.http1_framing import (
    H11_HEAD_LIMIT,
    METHOD_PREFIX,
    REQUEST_LINE,
    REQUEST_START,
    failure_reason,
    framing_ambiguity,
    path_of,
    proposes_upgrade,
)
from tui.model.http1_state import Http1State


class RequestSide(MessageSide):
    """Reads the client's bytes into requests, each the start of an exchange in ``book``."""

    start = REQUEST_START
    is_client = True

    def __init__(
        self,
        reader: ByteReader,
        state: Http1State,
        book: ExchangeBook,
        cache: Http1Cache,
        on_request: Callable[[Exchange], None] | None,
    ) -> None:
        super().__init__(reader, state, book)
        self._cache = cache
        self._on_request = on_request

    def head_pending(self) -> bool:
        """Bytes of a request whose head is not complete yet are waiting."""
        reader = self.reader
        if self.state.client != "message":
            return False
        if reader.h11 is None:
            return reader.has_unparsed()
        return not reader.head_done

    def pump(self, ts: float, sink: ExchangeSink) -> None:
        reader = self.reader
        state = self.state
        while True:
            if state.client == "resync" and not self.resync():
                return
            if state.client != "message":
                return
            parser = reader.h11
            if parser is None:
                if not reader.has_unparsed():
                    return
                simple = read_request(reader.buf, reader.pos)
                if simple is not None:
                    self._simple_request(simple, ts, sink)
                    continue
                parser = h11.Connection(h11.SERVER, max_incomplete_event_size=H11_HEAD_LIMIT)
                reader.start_message(parser)
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._request_failed(failure_reason(str(exc)), sink)
                continue
            if event is h11.NEED_DATA:
                # A request cut short by the close stays incomplete: h11 is not told of the end.
                if not reader.feed_more(send_eof=False):
                    return
                continue
            if isinstance(event, h11.Data):
                exchange = reader.exchange
                if exchange is not None:
                    self.book.add_body(reader, exchange.request, event.data)
                    sink.exchange_changed(exchange)
            elif isinstance(event, h11.Request):
                self._request_started(event, event.headers.raw_items(), sink)
            elif isinstance(event, h11.EndOfMessage):
                exchange = reader.exchange
                reader.end_message()
                self._request_ended(exchange, event.headers.raw_items(), ts, sink)
            else:
                return

    def _simple_request(self, simple: SimpleRequest, ts: float, sink: ExchangeSink) -> None:
        """A plain request head, read without h11, and its body when it is all there: the
        steps h11's events drive. A body still coming is h11's to read."""
        reader = self.reader
        reader.start_simple_message()
        self._request_started(simple, simple.headers, sink)
        exchange = reader.exchange
        if simple.body is None:
            reader.read_body_with(self._cache.request_body_parser(simple.framing), simple.end)
            return
        if simple.body and exchange is not None:
            self.book.add_body(reader, exchange.request, simple.body)
        reader.end_simple_message(simple.end)
        self._request_ended(exchange, (), ts, sink)

    def _request_started(
        self, line: RequestLine, raw_headers: Iterable[tuple[bytes, bytes]], sink: ExchangeSink
    ) -> None:
        reader = self.reader
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
        exchange = self.book.new_exchange(request, reader.ts_at(reader.pos))
        ambiguity = framing_ambiguity(headers)
        if ambiguity is not None:
            exchange.notes.append(f"request: {ambiguity}")
        if upgrade and proposes_upgrade(request):
            self.book.upgrades.add(exchange)
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
        if request.method == "CONNECT" or exchange in self.book.upgrades:
            # What follows is HTTP again only if the server declines; wait for its answer.
            self.state.client_event("switch_requested")
            self.book.switch_pending = exchange

    def _request_failed(self, reason: str, sink: ExchangeSink) -> None:
        reader = self.reader
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
            exchange = self.book.new_exchange(request, reader.ts_at(reader.pos))
            exchange.error = f"malformed request: {reason}"
            sink.exchange_started(exchange)
        else:
            self.book.note_junk("client", reason)
        reader.abandon_message(REQUEST_LINE)
        self.event("message_malformed")
