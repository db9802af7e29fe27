"""HTTP/2 decoding of one tapped connection, both directions: each stream is one exchange.

hyperframe cuts frames and hpack decodes header blocks, one decoder per direction, but the
connection state machine of python-hyper's h2 is an endpoint's: it refuses what its peer may not
send and answers what it receives. A tap watches both sides, so it keeps its own table of
streams (what each side has sent so far), believes what it sees, and never invents: a DATA or
response frame for a stream whose request was not seen is passed over.

Joined mid-stream or after a loss, a direction's dynamic header table is partly unknown: header
blocks are decoded by ``hpack_partial`` from there on, and exchanges whose headers referred to
unknown entries say so in their notes. Bytes are never spliced across a gap: the direction
resynchronises on a plausible frame boundary and every stream it was carrying is marked
incomplete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Protocol

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tui.model.flows import Connection, Exchange, Message, Request, Response, StreamMessage
from tui.model.grpc import (
    MessageSplitter,
    SplitMessage,
    decompress,
    is_grpc,
    split_exactly,
    status_name,
)
from tui.model.hpack_partial import MalformedHeaderBlock, PartialDecoder
from tui.model.http2_frames import DataPiece, FrameReader, FrameSkipped

Direction = Literal["in", "out"]

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
JOINED_MID_STREAM = "headers incomplete (joined mid-stream)"
AFTER_A_LOSS = "headers incomplete (after a loss)"

_MAX_HEADER_BLOCK = 256 * 1024
_MAX_OPEN_STREAMS = 1000
"""Streams tracked at once; past it the oldest is let go (peers usually allow 100)."""
_MAX_MESSAGES = 1000
"""gRPC messages kept per call; later ones are counted."""
_MAX_TABLE_SIZE = 64 * 1024
_MAX_ERRORS = 20
_HEADER_CACHE_MAX = 20_000
_GRPC_PATH = re.compile(r"/[A-Za-z_][\w.]*/\w+\Z")


class ExchangeSink(Protocol):
    """Told about exchanges as they appear and change (the store's change record)."""

    def exchange_started(self, exchange: Exchange) -> None: ...

    def exchange_changed(self, exchange: Exchange) -> None: ...


@dataclass(slots=True, eq=False)
class _Stream:
    """What both sides have sent on one stream, as far as seen."""

    exchange: Exchange
    client_done: bool = False
    server_done: bool = False
    grpc_in: MessageSplitter | None = None
    grpc_out: MessageSplitter | None = None
    grpc_encoding: dict[str, str] = field(default_factory=dict)
    messages_dropped: int = 0


@dataclass(slots=True, eq=False)
class _Block:
    """A header block arriving in HEADERS (or PUSH_PROMISE) then CONTINUATION frames."""

    stream_id: int
    fragments: list[bytes]
    size: int
    end_stream: bool
    promise: bool


class _Side:
    """One direction: its frames, its HPACK decoder, the header block it is in the middle of."""

    __slots__ = ("block", "direction", "exact", "partial", "reader", "why_partial")

    def __init__(self, direction: Direction, joined_late: bool, preface: bool) -> None:
        self.direction = direction
        self.reader = FrameReader(synced=not joined_late, expect_preface=preface)
        self.exact: hpack.Decoder | None = None
        self.partial: PartialDecoder | None = None
        self.why_partial = ""
        if joined_late:
            self.lose_table(JOINED_MID_STREAM)
        else:
            self.exact = hpack.Decoder()
            self.exact.max_header_list_size = _MAX_HEADER_BLOCK
        self.block: _Block | None = None

    def lose_table(self, why: str) -> None:
        """The dynamic table is no longer fully known (a loss, a block that failed)."""
        self.exact = None
        self.partial = PartialDecoder()
        self.why_partial = why


class Http2Decoder:
    """Decodes one HTTP/2 connection's two byte streams into its ``exchanges``, in place.

    ``upgraded``: the HTTP/1.1 exchange whose ``101`` switched to h2c; it is stream 1, whose
    request was that HTTP/1.1 request.
    """

    def __init__(
        self,
        connection: Connection,
        body_cap: int = 65_536,
        joined_late: bool = False,
        upgraded: Exchange | None = None,
    ) -> None:
        self.connection = connection
        self.body_cap = body_cap
        self._in = _Side("in", joined_late, preface=not joined_late)
        self._out = _Side("out", joined_late, preface=False)
        self._streams: dict[int, _Stream] = {}
        self._highest_client_stream = 0
        if connection.protocol not in ("h2", "grpc"):
            connection.protocol = "h2"
        if upgraded is not None:
            self._adopt(upgraded)

    # ------------------------------------------------------------------------------- input

    def feed(self, direction: Direction, data: bytes, ts: float, sink: ExchangeSink) -> None:
        side = self._in if direction == "in" else self._out
        reader = side.reader
        reader.feed(data)
        item = reader.next()
        while item is not None:
            if type(item) is DataPiece:
                self._data(side, item, ts, sink)
            elif type(item) is FrameSkipped:
                self._skipped(side, item, ts, sink)
            else:
                self._frame(side, item, ts, sink)  # type: ignore[arg-type]
            item = reader.next()

    def gap(self, direction: Direction, length: int, ts: float, sink: ExchangeSink) -> None:
        """Bytes of one direction were lost: its streams are incomplete, its framing and header
        table unknown until it resynchronises."""
        side = self._in if direction == "in" else self._out
        side.reader.lose()
        side.block = None
        side.lose_table(AFTER_A_LOSS)
        for stream in self._streams.values():
            done = stream.client_done if direction == "in" else stream.server_done
            if not done:
                stream.exchange.incomplete = True
                self._cut_grpc(stream, direction, ts, "cut by a loss")
                sink.exchange_changed(stream.exchange)

    def close(self, ts: float, sink: ExchangeSink) -> None:
        for stream_id in list(self._streams):
            stream = self._streams.pop(stream_id)
            exchange = stream.exchange
            if not stream.server_done and exchange.error is None:
                exchange.error = "the connection closed before the response was complete"
            self._cut_grpc(stream, "in", ts, "cut by the end of the connection")
            self._cut_grpc(stream, "out", ts, "cut by the end of the connection")
            sink.exchange_changed(exchange)

    # ------------------------------------------------------------------------------- frames

    def _frame(self, side: _Side, frame: Frame, ts: float, sink: ExchangeSink) -> None:
        block = side.block
        if block is not None and not isinstance(frame, ContinuationFrame):
            self._block_broken(side, block, "a header block was interrupted", sink)
        kind = type(frame)
        if kind is HeadersFrame or kind is PushPromiseFrame:
            self._block_start(side, frame, ts, sink)  # type: ignore[arg-type]
        elif kind is ContinuationFrame:
            self._continuation(side, frame, ts, sink)  # type: ignore[arg-type]
        elif kind is RstStreamFrame:
            self._reset(side, frame, ts, sink)  # type: ignore[arg-type]
        elif kind is SettingsFrame:
            self._settings(side, frame)  # type: ignore[arg-type]
        elif kind is GoAwayFrame:
            self._goaway(side, frame, sink)  # type: ignore[arg-type]
        # PRIORITY, PING, WINDOW_UPDATE and extension frames change nothing a person reads.

    def _skipped(self, side: _Side, item: FrameSkipped, ts: float, sink: ExchangeSink) -> None:
        self._note_error(f"{_who(side)} sent a frame podtap could not read: {item.reason}")
        stream = self._streams.get(item.stream_id)
        if stream is not None:
            stream.exchange.incomplete = True
            sink.exchange_changed(stream.exchange)
        if item.frame_type in (1, 5, 9):
            # A header block went unread: the dynamic table it may have changed is unknown.
            side.block = None
            side.lose_table(AFTER_A_LOSS)

    def _settings(self, side: _Side, frame: SettingsFrame) -> None:
        size = frame.settings.get(SettingsFrame.HEADER_TABLE_SIZE)
        # The receiver's setting bounds what the *other* side's encoder may use.
        other = self._out if side is self._in else self._in
        if size is not None and other.exact is not None:
            allowed = max(other.exact.max_allowed_table_size, min(size, _MAX_TABLE_SIZE))
            other.exact.max_allowed_table_size = allowed

    def _goaway(self, side: _Side, frame: GoAwayFrame, sink: ExchangeSink) -> None:
        code = _error_name(frame.error_code)
        note = f"{_who(side)} sent GOAWAY ({code}, last stream {frame.last_stream_id})"
        if frame.error_code:
            self._note_error(note)
        for stream_id, stream in self._streams.items():
            if stream_id > frame.last_stream_id and stream_id % 2 == 1:
                stream.exchange.notes.append(note + ": this stream was not processed")
                sink.exchange_changed(stream.exchange)

    def _reset(self, side: _Side, frame: RstStreamFrame, ts: float, sink: ExchangeSink) -> None:
        stream = self._streams.pop(frame.stream_id, None)
        if stream is None:
            return
        exchange = stream.exchange
        exchange.notes.append(f"reset by {_who(side)} ({_error_name(frame.error_code)})")
        if exchange.finished is None:
            exchange.finished = ts
        self._cut_grpc(stream, "in", ts, "cut by the reset")
        self._cut_grpc(stream, "out", ts, "cut by the reset")
        sink.exchange_changed(exchange)

    # ------------------------------------------------------------------------------- headers

    def _block_start(
        self, side: _Side, frame: HeadersFrame | PushPromiseFrame, ts: float, sink: ExchangeSink
    ) -> None:
        promise = isinstance(frame, PushPromiseFrame)
        end_stream = not promise and "END_STREAM" in frame.flags
        block = _Block(frame.stream_id, [frame.data], len(frame.data), end_stream, promise)
        if "END_HEADERS" in frame.flags:
            self._block_done(side, block, ts, sink)
        else:
            side.block = block

    def _continuation(
        self, side: _Side, frame: ContinuationFrame, ts: float, sink: ExchangeSink
    ) -> None:
        block = side.block
        if block is None:
            return  # Joined in the middle of a block, or after a broken one.
        if frame.stream_id != block.stream_id:
            self._block_broken(side, block, "CONTINUATION on another stream", sink)
            return
        block.fragments.append(frame.data)
        block.size += len(frame.data)
        if block.size > _MAX_HEADER_BLOCK:
            self._block_broken(side, block, "a header block is past the cap", sink)
        elif "END_HEADERS" in frame.flags:
            side.block = None
            self._block_done(side, block, ts, sink)

    def _block_broken(self, side: _Side, block: _Block, why: str, sink: ExchangeSink) -> None:
        side.block = None
        side.lose_table(AFTER_A_LOSS)
        self._note_error(f"{_who(side)}: {why}")
        stream = self._streams.get(block.stream_id)
        if stream is not None:
            stream.exchange.incomplete = True
            sink.exchange_changed(stream.exchange)

    def _block_done(self, side: _Side, block: _Block, ts: float, sink: ExchangeSink) -> None:
        data = block.fragments[0] if len(block.fragments) == 1 else b"".join(block.fragments)
        headers, unknown, error = self._decode_block(side, data)
        if block.promise:
            return  # Server push: the pushed response has no request on the wire.
        if side is self._in:
            exchange = self._client_headers(block, headers, ts, sink)
        else:
            exchange = self._server_headers(block, headers, ts)
        if exchange is None:
            return
        if unknown and side.why_partial not in exchange.notes:
            exchange.notes.append(side.why_partial)
        if error:
            exchange.error = error
            exchange.incomplete = True
        sink.exchange_changed(exchange)

    def _decode_block(self, side: _Side, data: bytes) -> tuple[list[tuple[str, str]], int, str]:
        """Headers, how many fields were unknown, and an error ('' if none)."""
        exact = side.exact
        if exact is not None:
            try:
                raw = exact.decode(data, raw=True)
            except hpack.HPACKError as exc:
                side.lose_table(AFTER_A_LOSS)
                return [], 0, f"malformed header block: {exc}"
            return [_header(name, value) for name, value in raw], 0, ""
        partial = side.partial
        assert partial is not None
        try:
            fields = partial.decode(data)
        except MalformedHeaderBlock as exc:
            side.partial = PartialDecoder()
            return [], 0, f"malformed header block: {exc}"
        headers = [_header(n, v) for n, v in fields if n is not None and v is not None]
        if partial.complete:
            side.exact = None  # Stays partial, but nothing is unknown any more.
        return headers, len(fields) - len(headers), ""

    def _client_headers(
        self, block: _Block, headers: list[tuple[str, str]], ts: float, sink: ExchangeSink
    ) -> Exchange | None:
        stream_id = block.stream_id
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id % 2 == 0 or stream_id <= self._highest_client_stream:
                return None  # Not a new request: trailers of a stream let go, or junk.
            self._highest_client_stream = stream_id
            stream = self._open(stream_id, _request(headers), ts, sink)
        elif stream.client_done:
            return None
        else:
            stream.exchange.request.trailers = headers
        if block.end_stream:
            self._client_done(stream, ts)
        return stream.exchange

    def _server_headers(
        self, block: _Block, headers: list[tuple[str, str]], ts: float
    ) -> Exchange | None:
        stream = self._streams.get(block.stream_id)
        if stream is None or stream.server_done:
            return None  # The request was not seen: nothing to pair this response with.
        exchange = stream.exchange
        response = exchange.response
        if response is None:
            response = _response(headers)
            if 100 <= response.status < 200:
                response.complete = True
                exchange.informational = (*exchange.informational, response)
            else:
                exchange.response = response
                exchange.response_started = ts
                self.connection.last_status = response.status or None
                if stream.grpc_in is not None:
                    stream.grpc_encoding["out"] = response.header("grpc-encoding") or ""
        else:
            response.trailers = headers
        if block.end_stream:
            self._server_done(stream, ts)
        return exchange

    # ------------------------------------------------------------------------------- streams

    def _open(self, stream_id: int, request: Request, ts: float, sink: ExchangeSink) -> _Stream:
        conn = self.connection
        exchange = Exchange(
            key=conn.key, index=conn.requests, request=request, started=ts, stream_id=stream_id
        )
        stream = _Stream(exchange)
        if is_grpc(request.header("content-type")):
            conn.protocol = "grpc"
            stream.grpc_in = MessageSplitter(self.body_cap)
            stream.grpc_out = MessageSplitter(self.body_cap)
            stream.grpc_encoding["in"] = request.header("grpc-encoding") or ""
        if len(self._streams) >= _MAX_OPEN_STREAMS:
            oldest = next(iter(self._streams))
            dropped = self._streams.pop(oldest).exchange
            dropped.notes.append("no longer followed: too many streams open at once")
            dropped.incomplete = True
            sink.exchange_changed(dropped)
        self._streams[stream_id] = stream
        conn.exchanges.append(exchange)
        sink.exchange_started(exchange)
        return stream

    def _adopt(self, exchange: Exchange) -> None:
        """h2c: the upgrade request is stream 1; its 101 becomes an informational response."""
        if exchange.response is not None:
            exchange.informational = (*exchange.informational, exchange.response)
            exchange.response = None
        exchange.response_started = None
        exchange.finished = None
        exchange.stream_id = 1
        self._highest_client_stream = 1
        self._streams[1] = _Stream(exchange, client_done=True)

    def _client_done(self, stream: _Stream, ts: float) -> None:
        stream.client_done = True
        exchange = stream.exchange
        exchange.request.complete = True
        exchange.request_finished = ts
        self._cut_grpc(stream, "in", ts, "cut by the end of the stream")
        self._grpc_by_framing(stream, "in", exchange.request, ts)
        self._forget_if_done(stream)

    def _server_done(self, stream: _Stream, ts: float) -> None:
        stream.server_done = True
        exchange = stream.exchange
        if exchange.response is not None:
            exchange.response.complete = True
            self._grpc_status(exchange)
        exchange.finished = ts
        self._cut_grpc(stream, "out", ts, "cut by the end of the stream")
        if exchange.response is not None:
            self._grpc_by_framing(stream, "out", exchange.response, ts)
        self._forget_if_done(stream)

    def _grpc_by_framing(
        self, stream: _Stream, direction: Direction, message: Message, ts: float
    ) -> None:
        """Joined late, a call's content-type may be an unknown table entry: a body that is
        exactly a run of gRPC messages (and a gRPC-looking path) is taken for one."""
        exchange = stream.exchange
        if stream.grpc_in is not None or not exchange.notes or message.body_truncated:
            return
        if exchange.request.target and not _GRPC_PATH.match(exchange.request.target):
            return
        splits = split_exactly(message.body, self.body_cap)
        if not splits:
            return
        self.connection.protocol = "grpc"
        for split in splits:
            self._grpc_message(stream, direction, split, ts, "taken for gRPC by its framing")

    def _forget_if_done(self, stream: _Stream) -> None:
        if stream.client_done and stream.server_done:
            self._streams.pop(stream.exchange.stream_id or 0, None)

    def _grpc_status(self, exchange: Exchange) -> None:
        response = exchange.response
        assert response is not None
        for name, value in (*response.trailers, *response.headers):
            if name == "grpc-status":
                response.reason = status_name(value)
                return

    # ------------------------------------------------------------------------------- data

    def _data(self, side: _Side, piece: DataPiece, ts: float, sink: ExchangeSink) -> None:
        stream = self._streams.get(piece.stream_id)
        if stream is None:
            return
        exchange = stream.exchange
        client = side is self._in
        message: Message | None = exchange.request if client else exchange.response
        if message is None or (stream.client_done if client else stream.server_done):
            return
        data = piece.data
        if data:
            message.body_length += len(data)
            room = self.body_cap - len(message.body)
            if room > 0:
                message.body += data if len(data) <= room else data[:room]
            splitter = stream.grpc_in if client else stream.grpc_out
            if splitter is not None:
                for split in splitter.feed(data):
                    self._grpc_message(stream, side.direction, split, ts, "")
        if piece.end_stream:
            if client:
                self._client_done(stream, ts)
            else:
                self._server_done(stream, ts)
        sink.exchange_changed(exchange)

    def _grpc_message(
        self, stream: _Stream, direction: Direction, split: SplitMessage, ts: float, note: str
    ) -> None:
        messages = stream.exchange.messages
        if len(messages) >= _MAX_MESSAGES:
            stream.messages_dropped += 1
            return
        data = split.data
        notes = [note] if note else []
        if split.compressed:
            data, compression = decompress(
                data, stream.grpc_encoding.get(direction, ""), self.body_cap
            )
            notes.insert(0, compression)
        elif len(data) < split.length:
            notes.append(f"first {len(data)} bytes kept")
        messages.append(StreamMessage(direction, ts, "grpc", data, split.length, "; ".join(notes)))

    def _cut_grpc(self, stream: _Stream, direction: Direction, ts: float, why: str) -> None:
        splitter = stream.grpc_in if direction == "in" else stream.grpc_out
        if splitter is None:
            return
        cut = splitter.cut()
        if cut is not None:
            self._grpc_message(stream, direction, cut, ts, why)

    def _note_error(self, text: str) -> None:
        errors = self.connection.errors
        if len(errors) < _MAX_ERRORS:
            errors.append(text)


def _who(side: _Side) -> str:
    return "the client" if side.direction == "in" else "the server"


def _error_name(code: int) -> str:
    return ERROR_CODES[code] if 0 <= code < len(ERROR_CODES) else f"error 0x{code:x}"


_HEADER_CACHE: dict[tuple[bytes, bytes], tuple[str, str]] = {}


def _header(name: bytes, value: bytes) -> tuple[str, str]:
    """Decoded once and shared: most fields repeat from one request to the next."""
    key = (name, value)
    decoded = _HEADER_CACHE.get(key)
    if decoded is None:
        decoded = (name.decode("latin-1"), value.decode("utf-8", "replace"))
        if len(value) <= 256:
            if len(_HEADER_CACHE) >= _HEADER_CACHE_MAX:
                _HEADER_CACHE.clear()
            _HEADER_CACHE[key] = decoded
    return decoded


def _request(headers: list[tuple[str, str]]) -> Request:
    request = Request(http_version="2")
    regular = []
    for name, value in headers:
        if not name.startswith(":"):
            regular.append((name, value))
        elif name == ":method":
            request.method = value
        elif name == ":path":
            request.target = value
            request.path = value.split("?", 1)[0]
        elif name == ":authority":
            request.host = value
    request.headers = regular
    if not request.host:
        request.host = request.header("host") or ""
    return request


def _response(headers: list[tuple[str, str]]) -> Response:
    response = Response(http_version="2")
    regular = []
    for name, value in headers:
        if name == ":status":
            response.status = int(value) if value.isdigit() and len(value) == 3 else 0
        elif not name.startswith(":"):
            regular.append((name, value))
    response.headers = regular
    return response
