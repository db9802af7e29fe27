"""HTTP/1.x decoding of one tapped connection, both directions, with h11.

h11 is a protocol *endpoint*: a server-side ``h11.Connection`` parses requests but will not parse
the next one until it has answered the last, and a client-side one only parses a response to a
request it sent itself. A tap is neither endpoint, so every message gets a fresh h11 connection:
server role for a request; client role for a response, after "sending" it a stand-in request
with the real method (HEAD and CONNECT change the response's framing) and the real upgrade
proposal (so that h11 accepts a 101). Each direction keeps its own buffer from the current
message's first byte, which lets the decoder

* hand h11 bounded pieces (never re-seed it with a whole pipelined backlog),
* resynchronise after malformed input or a gap by scanning for the next line that looks like a
  request line (or status line), and
* tell when each message began and ended (the capture time of the chunk that carried the byte).

Responses pair with requests in order (HTTP/1.x has no other way); a response seen with no
request waiting (a connection joined mid-stream) gets a stand-in request marked incomplete.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Literal, Protocol

import h11

from tui.model.flows import Connection, Exchange, Message, Request, Response
from tui.model.tls import NeedMoreData, NotTls, looks_like_tls_record, parse_client_hello

Direction = Literal["in", "out"]
_Mode = Literal["detect", "message", "resync", "wait_switch", "raw"]

_PIECE = 8192
"""How much is handed to h11 at once: bounds the copy h11 makes of its leftover per message."""
_KEEP_BEHIND = 65536
"""Bytes of a long body kept behind the parse point (h11 may still hold some of them)."""
_MAX_SCAN_LINE = 8192
"""A partial line longer than this is not waited for when resynchronising."""
_MAX_FILLED_GAP = 1 << 20
"""A gap inside a Content-Length body up to this size is skipped over, keeping the framing."""
_MAX_TLS_HELLO = 1 << 16
_MAX_ERRORS = 20
_MAX_NOTES = 5

# Where a message may start when resynchronising: any method token at the start of a line, a
# well-known method anywhere (a body need not end with a newline), or a status line anywhere.
# Lines are bounded so that an unfinished one never needs more than _MAX_SCAN_LINE kept.
_REQUEST_START = re.compile(
    rb"(?:(?<=\n)[A-Z][A-Z0-9_-]{0,19}|(?:GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS|CONNECT|TRACE))"
    rb" [^\x00-\x20\x7f]{1,8000} HTTP/1\.[01]\r?\n"
)
_STATUS_START = re.compile(rb"HTTP/1\.[01] [1-5][0-9]{2}(?: [^\r\n]{0,1000})?\r?\n")
_METHOD_PREFIX = re.compile(rb"[A-Z][A-Z0-9_-]{0,19}(?: |\Z)")
_SWITCHED = h11.SWITCHED_PROTOCOL
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class ExchangeSink(Protocol):
    """Told about exchanges as they appear and change (the store's change record)."""

    def exchange_started(self, exchange: Exchange) -> None: ...

    def exchange_changed(self, exchange: Exchange) -> None: ...


class _Reader:
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
        "mode",
        "pos",
        "skipped",
        "store_body",
    )

    def __init__(self, mode: _Mode) -> None:
        self.buf = bytearray(b"\n")
        self.base = -1
        self.pos = 1
        self.fed = 1
        self.mode: _Mode = mode
        self.h11: h11.Connection | None = None
        self.head_done = False
        self.exchange: Exchange | None = None
        self.chunks: deque[tuple[int, float]] = deque()
        self.eof = False
        self.eof_sent = False
        self.skipped = 0
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
        self.fed = self.pos
        self.head_done = False
        self.body_seen = 0
        self.store_body = True
        self.eof_sent = False
        self.feed_more(send_eof=False)

    def feed_more(self, send_eof: bool) -> bool:
        """Give h11 the next piece (or the end of the stream); False when there is nothing."""
        assert self.h11 is not None
        if self.fed < len(self.buf):
            piece = self.buf[self.fed : self.fed + _PIECE]
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

    def end_message(self) -> None:
        """The message ended: what h11 did not consume starts the next one."""
        assert self.h11 is not None
        leftover = len(self.h11.trailing_data[0])
        self.h11 = None
        self.exchange = None
        self.pos = pos = self.fed - leftover
        if pos >= len(self.buf):
            # Everything is consumed (the common case): keep just the last byte as context.
            cut = pos - 1
            if cut > 0:
                del self.buf[:cut]
                self.base += cut
                self.pos = self.fed = 1
        elif pos > _KEEP_BEHIND:
            self._forget_before(pos)

    def abandon_message(self) -> None:
        """Malformed input: rescan from just after where the bad message began.

        A bad head is rescanned from its second byte; inside a body, from what h11 had not
        consumed yet. Either way the rescan position does not depend on how the bytes were
        split into chunks, so the decoding does not either.
        """
        if self.h11 is not None and self.head_done:
            leftover = len(self.h11.trailing_data[0])
            self.pos = self.fed - leftover
        else:
            self.pos = min(self.pos + 1, len(self.buf))
        self.h11 = None
        self.exchange = None
        self.mode = "resync"

    def lose(self) -> None:
        """A gap: everything buffered is stale and the next byte may start a message."""
        self.base += len(self.buf) - 1
        self.buf = bytearray(b"\n")
        self.pos = self.fed = 1
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

    def _compact(self) -> None:
        if self.pos >= len(self.buf):
            self._forget_before(len(self.buf))
        elif self.pos > _KEEP_BEHIND:
            self._forget_before(self.pos)

    def resync(self, start: re.Pattern[bytes]) -> bool:
        """Find where the next message may start; True (and ``pos`` there) when found."""
        buf = self.buf
        found = start.search(buf, self.pos)
        if found is not None:
            self._skip_to(found.start())
            self.mode = "message"
            return True
        # A start line fits on one line: only the unfinished last line can still hold one.
        keep = max(buf.rfind(b"\n", self.pos), self.pos, len(buf) - _MAX_SCAN_LINE)
        self._skip_to(keep)
        return False

    def _skip_to(self, index: int) -> None:
        self.skipped += index - self.pos
        self.pos = index
        self._compact()


class ConnectionDecoder:
    """Decodes one connection's two byte streams into its ``exchanges``, in place."""

    def __init__(
        self,
        connection: Connection,
        body_cap: int = 65_536,
        raw_cap: int = 65_536,
        on_request: Callable[[Exchange], None] | None = None,
    ) -> None:
        self.connection = connection
        self.body_cap = body_cap
        self.raw_cap = raw_cap
        self._on_request = on_request
        mid = connection.mid_stream
        self._in = _Reader("resync" if mid else "detect")
        self._out = _Reader("resync" if mid else "detect")
        self._awaiting: deque[Exchange] = deque()
        self._next_index = 0
        self._switch_pending: Exchange | None = None
        # Requests that proposed a protocol upgrade (their response may be a 101).
        self._upgrades: set[Exchange] = set()
        self._resync_after_switch = False
        self._joined_late = connection.mid_stream
        self._closed = False

    # --------------------------------------------------------------------------- input

    def feed(self, direction: Direction, data: bytes, ts: float, sink: ExchangeSink) -> None:
        conn = self.connection
        conn.last_seen = ts
        size = len(data)
        if direction == "in":
            conn.bytes_in += size
            raw = conn.raw_in
            reader = self._in
        else:
            conn.bytes_out += size
            raw = conn.raw_out
            reader = self._out
        room = self.raw_cap - len(raw)
        if room > 0 and not conn.raw_released:
            raw += data if size <= room else data[:room]
        if reader.mode == "raw":
            return
        reader.buf += data
        reader.chunks.append((reader.base + len(reader.buf), ts))
        self._pump(ts, sink, direction)

    def gap(self, direction: Direction, length: int, ts: float, sink: ExchangeSink) -> None:
        conn = self.connection
        conn.gaps += 1
        conn.gap_bytes += length
        conn.last_seen = ts
        reader = self._in if direction == "in" else self._out
        if reader.mode == "raw":
            return
        if reader.mode == "detect":
            # The start of the stream is lost: decode it as if joined mid-stream.
            self._joined_late = True
            for side in (self._in, self._out):
                side.mode = "resync"
        self._pump(ts, sink)
        part = "request" if direction == "in" else "response"
        note = f"{length:,} bytes of the {part} were not captured (a gap in the TCP stream)"
        if reader.mode == "message" and reader.h11 is not None:
            exchange = reader.exchange
            if exchange is not None:
                _mark_incomplete(exchange, note, sink)
                message = exchange.request if reader is self._in else exchange.response
                if message is not None and self._skip_gap_in_body(reader, message, length):
                    self._pump(ts, sink)
                    return
                if reader is self._out:
                    self._answered(exchange)
        elif reader is self._out and self._awaiting:
            # A whole response may be in the gap: the one waited for is at least in doubt.
            _mark_incomplete(self._awaiting[0], f"a response may be lost: {note}", sink)
        self._lose(reader)
        self._pump(ts, sink)

    def lost(self, note: str, ts: float, sink: ExchangeSink) -> None:
        """Bytes of both directions, how many unknown, will never arrive (events the agent
        could not deliver, an agent gone): ``note`` says why, on every exchange it touches.

        What was in progress is incomplete, nothing buffered is joined with what comes next,
        and the requests still waiting stop waiting: their responses may be among the lost
        bytes, and pairing a later response with them would shift every pairing after it.
        A response that comes later without its request gets a stand-in request instead."""
        self._pump(ts, sink)
        for reader in (self._in, self._out):
            if reader.mode == "raw":
                continue
            if reader.mode == "detect":
                self._joined_late = True
                reader.mode = "resync"
            if reader.exchange is not None and reader.h11 is not None:
                _mark_incomplete(reader.exchange, note, sink)
            self._lose(reader)
        for exchange in self._awaiting:
            if exchange.finished is None:
                _mark_incomplete(exchange, note, sink)
        self._awaiting.clear()
        self._upgrades.clear()
        if self._switch_pending is not None:
            self._switch_pending = None
            self._in.mode = "resync"
        self._resync_after_switch = False
        self._pump(ts, sink)

    def _lose(self, reader: _Reader) -> None:
        reader.lose()
        if reader.mode == "wait_switch":
            self._resync_after_switch = True
        elif reader.mode == "message":
            reader.mode = "resync"

    def close(self, ts: float, sink: ExchangeSink) -> None:
        self._closed = True
        self._in.eof = True
        self._out.eof = True
        self._pump(ts, sink)

    # --------------------------------------------------------------------------- driving

    def _pump(self, ts: float, sink: ExchangeSink, fed: Direction | None = None) -> None:
        """Decode what can be decoded; ``fed`` is the side that just got bytes, if only one."""
        conn = self.connection
        if conn.protocol == "unknown" and not self._detect():
            return
        if conn.protocol != "http":
            return
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
            before = self._in.mode
            self._pump_responses(ts, sink)
            if self._in.mode == before:
                return
            requests, responses = True, False

    def _detect(self) -> bool:
        """Decide the protocol from the client's first bytes; False while undecided."""
        if self._joined_late:
            return self._detect_mid_stream()
        conn = self.connection
        reader = self._in
        head = bytes(reader.buf[reader.pos : reader.pos + 24])
        if not head:
            if self._out.has_unparsed():
                # The server spoke first: not HTTP.
                self._become("tcp")
                return True
            return False
        if head[0] == 0x16:
            try:
                conn.tls = parse_client_hello(
                    bytes(reader.buf[reader.pos : reader.pos + _MAX_TLS_HELLO])
                )
            except NeedMoreData:
                if len(reader.buf) - reader.pos < _MAX_TLS_HELLO:
                    return False
                self._become("tcp")
                return True
            except NotTls:
                self._become("tcp")
                return True
            self._become("tls")
            return True
        if _H2_PREFACE.startswith(head[: len(_H2_PREFACE)]):
            if len(head) < len(_H2_PREFACE):
                return False
            # HTTP/2 with prior knowledge (gRPC, mostly): binary framing h11 does not speak.
            self._become("tcp")
            conn.errors.append("HTTP/2 (not decoded: podtap decodes HTTP/1.x)")
            return True
        prefix = _METHOD_PREFIX.match(head)
        if prefix is None:
            self._become("tcp")
            return True
        if not prefix.group().endswith(b" "):
            return False
        conn.protocol = "http"
        self._in.mode = "message"
        self._out.mode = "message"
        return True

    def _detect_mid_stream(self) -> bool:
        """Joined late: HTTP once either side shows a request or status line."""
        start = self._in
        if start.base == -1 and looks_like_tls_record(bytes(start.buf[1:4])):
            self._become("tls")
            return True
        found_request = self._in.resync(_REQUEST_START)
        found_response = self._out.resync(_STATUS_START)
        if found_request or found_response:
            self.connection.protocol = "http"
            return True
        return False

    def _become(self, protocol: Literal["tls", "tcp"]) -> None:
        self.connection.protocol = protocol
        for reader in (self._in, self._out):
            reader.mode = "raw"
            reader.lose()

    # --------------------------------------------------------------------------- requests

    def _pump_requests(self, ts: float, sink: ExchangeSink) -> None:
        reader = self._in
        while True:
            if reader.mode == "resync" and not reader.resync(_REQUEST_START):
                return
            if reader.mode != "message":
                return
            parser = reader.h11
            if parser is None:
                if not reader.has_unparsed():
                    return
                parser = h11.Connection(h11.SERVER)
                reader.start_message(parser)
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._request_failed(reader, str(exc), ts, sink)
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
                self._request_started(reader, event, ts, sink)
            elif isinstance(event, h11.EndOfMessage):
                self._request_ended(reader, event, ts, sink)
            else:
                return

    def _request_started(
        self, reader: _Reader, event: h11.Request, ts: float, sink: ExchangeSink
    ) -> None:
        reader.head_done = True
        target = event.target.decode("latin-1")
        headers = _headers(event.headers)
        request = Request(
            headers=headers,
            method=_word(event.method),
            target=target,
            path=_path_of(target, event.method),
            http_version=_word(event.http_version),
        )
        upgrade = False
        for name, value in headers:
            size = len(name)
            if size == 4 and not request.host and name.lower() == "host":
                request.host = value
            elif size == 7 and name.lower() == "upgrade":
                upgrade = True
        exchange = self._new_exchange(request, reader.ts_at(reader.pos))
        if upgrade and _proposes_upgrade(request):
            self._upgrades.add(exchange)
        reader.exchange = exchange
        sink.exchange_started(exchange)
        if self._on_request is not None:
            self._on_request(exchange)

    def _request_ended(
        self, reader: _Reader, event: h11.EndOfMessage, ts: float, sink: ExchangeSink
    ) -> None:
        exchange = reader.exchange
        reader.end_message()
        if exchange is None:
            return
        request = exchange.request
        request.complete = True
        if event.headers:
            request.trailers = _headers(event.headers)
        exchange.request_finished = ts
        sink.exchange_changed(exchange)
        if request.method == "CONNECT" or exchange in self._upgrades:
            # What follows is HTTP again only if the server declines; wait for its answer.
            reader.mode = "wait_switch"
            self._switch_pending = exchange

    def _request_failed(
        self, reader: _Reader, reason: str, ts: float, sink: ExchangeSink
    ) -> None:
        exchange = reader.exchange
        if exchange is not None:
            exchange.error = f"malformed request: {reason}"
            sink.exchange_changed(exchange)
        elif _METHOD_PREFIX.match(reader.buf, reader.pos, reader.pos + 21):
            # A request line with a bad head: keep what its first line says, and pair it (the
            # server most likely answers it with a 400).
            line = bytes(reader.buf[reader.pos : reader.pos + 200]).split(b"\n", 1)[0]
            words = line.decode("latin-1").strip().split(" ")
            target = words[1] if len(words) > 1 else ""
            request = Request(method=words[0], target=target, path=_path_of(target, b""))
            exchange = self._new_exchange(request, reader.ts_at(reader.pos))
            exchange.error = f"malformed request: {reason}"
            sink.exchange_started(exchange)
        else:
            self._note_junk("client", reason)
        reader.abandon_message()

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
        while True:
            if reader.mode == "resync" and not reader.resync(_STATUS_START):
                return
            if reader.mode != "message":
                return
            parser = reader.h11
            if parser is None:
                if not reader.has_unparsed():
                    return
                exchange = self._exchange_to_answer(ts, sink)
                if exchange is None:
                    return
                parser = _response_parser(exchange.request.method, exchange in self._upgrades)
                reader.start_message(parser)
                reader.exchange = exchange
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._response_failed(reader, str(exc), sink)
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
                self._response_head(reader, exchange, event, ts, sink)
                if parser.their_state is _SWITCHED:
                    self._switched(exchange, ts, sink)
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._response_ended(reader, exchange, event, ts, sink)
            else:
                return

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
        if requests.mode != "message":
            return False
        if requests.h11 is None:
            return requests.has_unparsed()
        return not requests.head_done

    def _response_head(
        self,
        reader: _Reader,
        exchange: Exchange,
        event: h11.Response | h11.InformationalResponse,
        ts: float,
        sink: ExchangeSink,
    ) -> None:
        response = Response(
            headers=_headers(event.headers),
            status=event.status_code,
            reason=_word(event.reason),
            http_version=_word(event.http_version),
        )
        if event.status_code < 200 and event.status_code != 101:
            response.complete = True
            exchange.informational = (*exchange.informational, response)
        else:
            reader.head_done = True
            exchange.response = response
            exchange.response_started = (
                reader.ts_at(reader.pos) if not exchange.informational else ts
            )
            self.connection.last_status = event.status_code
        sink.exchange_changed(exchange)

    def _response_ended(
        self, reader: _Reader, exchange: Exchange, event: h11.EndOfMessage, ts: float,
        sink: ExchangeSink,
    ) -> None:
        reader.end_message()
        response = exchange.response
        if response is not None:
            response.complete = True
            if event.headers:
                response.trailers = _headers(event.headers)
        exchange.finished = ts
        self._answered(exchange)
        sink.exchange_changed(exchange)

    def _response_failed(self, reader: _Reader, reason: str, sink: ExchangeSink) -> None:
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
        reader.abandon_message()

    def _answered(self, exchange: Exchange) -> None:
        if self._awaiting and self._awaiting[0] is exchange:
            self._awaiting.popleft()
        elif exchange in self._awaiting:
            self._awaiting.remove(exchange)
        self._upgrades.discard(exchange)
        if self._switch_pending is exchange:
            # The server declined the upgrade: the client's bytes are HTTP again.
            self._switch_pending = None
            if self._in.mode == "wait_switch":
                self._in.mode = "resync" if self._resync_after_switch else "message"
                self._resync_after_switch = False

    def _switched(self, exchange: Exchange, ts: float, sink: ExchangeSink) -> None:
        exchange.upgraded = True
        exchange.finished = ts
        if exchange.response is not None:
            exchange.response.complete = True
        self._switch_pending = None
        self._answered(exchange)
        for side in (self._in, self._out):
            side.mode = "raw"
            side.lose()
        sink.exchange_changed(exchange)

    # --------------------------------------------------------------------------- bodies & gaps

    def _add_body(self, reader: _Reader, message: Message, data: bytes) -> None:
        reader.body_seen += len(data)
        message.body_length += len(data)
        if reader.store_body and len(message.body) < self.body_cap:
            message.body += data[: self.body_cap - len(message.body)]

    def _skip_gap_in_body(self, reader: _Reader, message: Message, length: int) -> bool:
        """Step over a gap that falls inside a body whose length is known; True if done."""
        if not reader.head_done or reader.h11 is None:
            return False
        length_known = _declared_length(reader, message)
        if length_known is not None:
            remaining = length_known - reader.body_seen - (len(reader.buf) - reader.fed)
            if length > remaining or length > _MAX_FILLED_GAP:
                return False
            reader.store_body = False
            # Zeros stand in for the lost bytes so h11 keeps counting; they are not stored.
            reader.append(bytes(length), reader.chunks[-1][1] if reader.chunks else 0.0)
            return True
        if reader is self._out and message is not None and not _is_chunked(message):
            # Read-until-close body: the lost bytes are only counted.
            reader.store_body = False
            message.body_length += length
            return True
        return False


def _mark_incomplete(exchange: Exchange, note: str, sink: ExchangeSink) -> None:
    exchange.incomplete = True
    # A few notes say it; a flood of gaps on one exchange would not say more.
    if note not in exchange.notes and len(exchange.notes) < _MAX_NOTES:
        exchange.notes.append(note)
    sink.exchange_changed(exchange)


_STAND_INS: dict[tuple[str, bool], h11.Request] = {}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}\Z")
_END = h11.EndOfMessage()


def _response_parser(method: str, upgrade: bool) -> h11.Connection:
    """A client-side h11 connection that has "sent" a stand-in for the request.

    Only what changes the response's framing is copied: the method (HEAD, CONNECT) and whether
    it proposed an upgrade (h11 rejects a 101 otherwise).
    """
    stand_in = _STAND_INS.get((method, upgrade))
    if stand_in is None:
        if not _TOKEN.match(method):
            method = "GET"
        headers = [("host", "podtap")]
        if upgrade:
            headers += [("connection", "upgrade"), ("upgrade", "unknown")]
        stand_in = h11.Request(method=method, target="/", headers=headers)
        if len(_STAND_INS) < 256:
            _STAND_INS[(method, upgrade)] = stand_in
    parser = h11.Connection(h11.CLIENT)
    parser.send(stand_in)
    parser.send(_END)
    return parser


def _proposes_upgrade(request: Request) -> bool:
    tokens = ",".join(request.header_values("connection")).lower()
    return "upgrade" in tokens and request.header("upgrade") is not None


class _RawHeaders(Protocol):
    def raw_items(self) -> list[tuple[bytes, bytes]]: ...


# Most header lines repeat from one request to the next (Host, User-Agent, Accept, a user id):
# decoding each once and sharing the resulting tuple saves most of the memory 100,000 kept
# exchanges take, and time too. The table is bounded; when full it is emptied, so that the
# lines that keep repeating come back and the one-offs (request ids) go.
_HEADER_LINES: dict[tuple[bytes, bytes], tuple[str, str]] = {}
_HEADER_LINES_MAX = 20_000
_HEADER_LINE_MAX = 256
_WORDS: dict[bytes, str] = {}


def _headers(headers: _RawHeaders) -> list[tuple[str, str]]:
    """Headers as sent: original case and order (h11's own view lowercases the names)."""
    lines = _HEADER_LINES
    out = []
    for line in headers.raw_items():
        decoded = lines.get(line)
        if decoded is None:
            name, value = line
            decoded = (name.decode("latin-1"), value.decode("utf-8", "replace"))
            if len(value) <= _HEADER_LINE_MAX:
                if len(lines) >= _HEADER_LINES_MAX:
                    lines.clear()
                lines[line] = decoded
        out.append(decoded)
    return out


def _word(raw: bytes) -> str:
    """Methods, versions, reason phrases: a handful of distinct values, shared."""
    text = _WORDS.get(raw)
    if text is None:
        text = raw.decode("latin-1")
        if len(_WORDS) < 1000:
            _WORDS[raw] = text
    return text


def _declared_length(reader: _Reader, message: Message) -> int | None:
    """The body length the message's framing promises, if it promises one."""
    exchange = reader.exchange
    if (
        isinstance(message, Response)
        and exchange is not None
        and (exchange.request.method == "HEAD" or message.status in (204, 304))
    ):
        return 0
    return _content_length(message)


def _content_length(message: Message) -> int | None:
    if _is_chunked(message):
        return None
    value = message.header("content-length")
    if value is None:
        return None
    try:
        return int(value.split(",")[0].strip())
    except ValueError:
        return None


def _is_chunked(message: Message) -> bool:
    encoding = message.header("transfer-encoding")
    return encoding is not None and "chunked" in encoding.lower()


def _path_of(target: str, method: bytes) -> str:
    if method == b"CONNECT":
        return target
    if "://" in target:
        after_scheme = target.split("://", 1)[1]
        slash = after_scheme.find("/")
        target = after_scheme[slash:] if slash >= 0 else "/"
    return target.split("?", 1)[0].split("#", 1)[0]
