"""HTTP/2 decoding of one tapped connection, both directions: each stream is one exchange.

hyperframe cuts frames and hpack decodes header blocks, one decoder per direction, but the
connection state machine of python-hyper's h2 is an endpoint's: it refuses what its peer may not
send and answers what it receives. A tap watches both sides, so it keeps its own table of
streams (what each side has sent so far), believes what it sees, and never invents: a DATA or
response frame for a stream whose request was not seen is passed over.

Joined mid-stream or after a loss, a direction's header table is partly unknown (see
``http2_headers``): exchanges whose headers referred to unknown entries say so in their notes.
Bytes are never spliced across a gap: the direction resynchronises on a plausible frame boundary
and every stream it was carrying is marked incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperframe.frame import (
    ContinuationFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tui.model.decoder import Direction, ExchangeSink
from tui.model.flows import Connection, Exchange, Message, Request
from tui.model.grpc import GrpcCall, call_status, is_grpc, messages_by_framing
from tui.model.http2_frames import (
    RESYNC_MAX_LENGTH,
    DataPiece,
    FrameReader,
    FrameSkipped,
    error_name,
)
from tui.model.http2_headers import (
    AFTER_A_LOSS,
    JOINED_MID_STREAM,
    MAX_HEADER_BLOCK,
    HeaderBlockDecoder,
    Headers,
    Http2HeaderCache,
    request_from,
    response_from,
)

__all__ = ["AFTER_A_LOSS", "JOINED_MID_STREAM", "Http2Decoder"]

_MAX_OPEN_STREAMS = 1000
"""Streams followed at once; past it the oldest is let go (peers usually allow 100)."""
_MAX_ERRORS = 20
_HEADER_FRAMES = (1, 5, 9)
"""HEADERS, PUSH_PROMISE, CONTINUATION: frames whose loss leaves the header table unknown."""


@dataclass(slots=True, eq=False)
class _Stream:
    """What both sides have sent on one stream, as far as seen."""

    exchange: Exchange
    client_done: bool = False
    server_done: bool = False
    grpc: GrpcCall | None = None


@dataclass(slots=True, eq=False)
class _Block:
    """A header block arriving in HEADERS (or PUSH_PROMISE) then CONTINUATION frames."""

    stream_id: int
    fragments: list[bytes]
    size: int
    end_stream: bool
    promise: bool


class _Side:
    """One direction: its frames, its header table, the header block it is in the middle of."""

    __slots__ = ("block", "direction", "headers", "reader")

    def __init__(
        self, direction: Direction, joined_late: bool, preface: bool, cache: Http2HeaderCache
    ) -> None:
        self.direction: Direction = direction
        self.reader = FrameReader(synced=not joined_late, expect_preface=preface)
        self.headers = HeaderBlockDecoder(joined_late, cache)
        self.block: _Block | None = None

    @property
    def who(self) -> str:
        return "the client" if self.direction == "in" else "the server"


class Http2Decoder:
    """Decodes one HTTP/2 connection's two byte streams into its ``exchanges``, in place.

    ``upgraded``: the HTTP/1.1 exchange whose ``101`` switched to h2c; it is stream 1, whose
    request was that HTTP/1.1 request. New exchanges are told to the sink as soon as their
    request's headers are decoded (the store's header inventory takes them from there).
    ``cache``: the decoded header fields this decoder shares with the others of its store (a
    cache of its own when none is given).
    """

    def __init__(
        self,
        connection: Connection,
        body_cap: int = 65_536,
        joined_late: bool = False,
        upgraded: Exchange | None = None,
        cache: Http2HeaderCache | None = None,
    ) -> None:
        self.connection = connection
        self.body_cap = body_cap
        if cache is None:
            cache = Http2HeaderCache()
        self._in = _Side("in", joined_late, preface=not joined_late, cache=cache)
        self._out = _Side("out", joined_late, preface=False, cache=cache)
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
                self._skipped(side, item, sink)
            else:
                self._frame(side, item, ts, sink)  # type: ignore[arg-type]
            item = reader.next()

    def gap(self, direction: Direction, length: int, ts: float, sink: ExchangeSink) -> None:
        """Bytes of one direction were lost: its streams are incomplete, its framing and header
        table unknown until it resynchronises."""
        side = self._in if direction == "in" else self._out
        inside = side.reader.skip_inside_data(length)
        if inside is not None:
            self._lost_in_body(side, *inside, sink)
            return
        side.reader.lose()
        side.block = None
        side.headers.lose_table(AFTER_A_LOSS)
        for stream in self._streams.values():
            if not (stream.client_done if direction == "in" else stream.server_done):
                stream.exchange.incomplete = True
                if stream.grpc is not None:
                    stream.grpc.cut(direction, ts, "cut by a loss")
                sink.exchange_changed(stream.exchange)

    def _lost_in_body(self, side: _Side, stream_id: int, length: int, sink: ExchangeSink) -> None:
        """A loss inside one DATA frame: only that body misses bytes; the rest decodes on."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        exchange = stream.exchange
        exchange.incomplete = True
        message = exchange.request if side is self._in else exchange.response
        if message is not None:
            message.body_length += length
        if stream.grpc is not None:
            # The message being split lost bytes: its framing from here on cannot be trusted.
            stream.grpc = None
            exchange.notes.append("gRPC messages after a loss are not shown")
        sink.exchange_changed(exchange)

    def close(self, ts: float, sink: ExchangeSink) -> None:
        for stream in self._streams.values():
            exchange = stream.exchange
            if not stream.server_done and exchange.error is None:
                exchange.error = "the connection closed before the response was complete"
            self._cut_grpc(stream, ts, "cut by the end of the connection")
            sink.exchange_changed(exchange)
        self._streams.clear()

    # ------------------------------------------------------------------------------- frames

    def _frame(self, side: _Side, frame: Frame, ts: float, sink: ExchangeSink) -> None:
        block = side.block
        kind = type(frame)
        if block is not None and kind is not ContinuationFrame:
            self._block_broken(side, block, "a header block was interrupted", sink)
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

    def _settings(self, side: _Side, frame: SettingsFrame) -> None:
        """A side's settings bound what the *other* side may send: its header table's size,
        its frames' length."""
        other = self._out if side is self._in else self._in
        settings = frame.settings
        table_size = settings.get(SettingsFrame.HEADER_TABLE_SIZE)
        if table_size is not None:
            other.headers.allow_table_size(table_size)
        frame_size = settings.get(SettingsFrame.MAX_FRAME_SIZE)
        if frame_size is not None and RESYNC_MAX_LENGTH <= frame_size < 1 << 24:
            other.reader.max_frame_size = frame_size

    def _skipped(self, side: _Side, item: FrameSkipped, sink: ExchangeSink) -> None:
        self._note_error(f"{side.who} sent a frame podtap could not read: {item.reason}")
        stream = self._streams.get(item.stream_id)
        if stream is not None:
            stream.exchange.incomplete = True
            sink.exchange_changed(stream.exchange)
        if item.frame_type in _HEADER_FRAMES:
            side.block = None
            side.headers.lose_table(AFTER_A_LOSS)

    def _goaway(self, side: _Side, frame: GoAwayFrame, sink: ExchangeSink) -> None:
        code = error_name(frame.error_code)
        note = f"{side.who} sent GOAWAY ({code}, last stream {frame.last_stream_id})"
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
        exchange.notes.append(f"reset by {side.who} ({error_name(frame.error_code)})")
        if exchange.finished is None:
            exchange.finished = ts
        self._cut_grpc(stream, ts, "cut by the reset")
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
        if block.size > MAX_HEADER_BLOCK:
            self._block_broken(side, block, "a header block is past the cap", sink)
        elif "END_HEADERS" in frame.flags:
            side.block = None
            self._block_done(side, block, ts, sink)

    def _block_broken(self, side: _Side, block: _Block, why: str, sink: ExchangeSink) -> None:
        side.block = None
        side.headers.lose_table(AFTER_A_LOSS)
        self._note_error(f"{side.who}: {why}")
        stream = self._streams.get(block.stream_id)
        if stream is not None:
            stream.exchange.incomplete = True
            sink.exchange_changed(stream.exchange)

    def _block_done(self, side: _Side, block: _Block, ts: float, sink: ExchangeSink) -> None:
        data = block.fragments[0] if len(block.fragments) == 1 else b"".join(block.fragments)
        headers, unknown, error = side.headers.decode(data)
        if block.promise:
            return  # Server push: the pushed response has no request on the wire.
        if side is self._in:
            exchange = self._client_headers(block, headers, ts, sink)
        else:
            exchange = self._server_headers(block, headers, ts)
        if exchange is None:
            return
        why = side.headers.why_partial
        if unknown and why not in exchange.notes:
            exchange.notes.append(why)
        if error:
            exchange.error = error
            exchange.incomplete = True
        sink.exchange_changed(exchange)

    def _client_headers(
        self, block: _Block, headers: Headers, ts: float, sink: ExchangeSink
    ) -> Exchange | None:
        stream_id = block.stream_id
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id % 2 == 0 or stream_id <= self._highest_client_stream:
                return None  # Not a new request: trailers of a stream let go, or junk.
            self._highest_client_stream = stream_id
            stream = self._open(stream_id, request_from(headers), ts, sink)
        elif stream.client_done:
            return None
        else:
            stream.exchange.request.trailers = headers
        if block.end_stream:
            self._client_done(stream, ts)
        return stream.exchange

    def _server_headers(self, block: _Block, headers: Headers, ts: float) -> Exchange | None:
        stream = self._streams.get(block.stream_id)
        if stream is None or stream.server_done:
            return None  # The request was not seen: nothing to pair this response with.
        exchange = stream.exchange
        if exchange.response is None:
            response = response_from(headers)
            if 100 <= response.status < 200:
                response.complete = True
                exchange.informational = (*exchange.informational, response)
            else:
                exchange.response = response
                exchange.response_started = ts
                self.connection.last_status = response.status or None
                if stream.grpc is not None:
                    stream.grpc.response_began()
        else:
            exchange.response.trailers = headers
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
            stream.grpc = GrpcCall(exchange, self.body_cap)
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
        # What follows the 101 is decoded, not raw.
        exchange.upgraded = False
        exchange.stream_id = 1
        self._highest_client_stream = 1
        self._streams[1] = _Stream(exchange, client_done=True)

    def _client_done(self, stream: _Stream, ts: float) -> None:
        stream.client_done = True
        exchange = stream.exchange
        exchange.request.complete = True
        exchange.request_finished = ts
        self._ended(stream, "in", exchange.request, ts)

    def _server_done(self, stream: _Stream, ts: float) -> None:
        stream.server_done = True
        exchange = stream.exchange
        exchange.finished = ts
        response = exchange.response
        if response is not None:
            response.complete = True
            status = call_status(exchange)
            if status is not None:
                # A call's status name (OK, NOT_FOUND…) is its response's reason.
                response.reason = status[1]
            self.connection.last_grpc_status = None if status is None else status[1]
            self._ended(stream, "out", response, ts)
        elif stream.client_done:
            self._streams.pop(exchange.stream_id or 0, None)

    def _ended(self, stream: _Stream, direction: Direction, message: Message, ts: float) -> None:
        exchange = stream.exchange
        if stream.grpc is not None:
            stream.grpc.cut(direction, ts, "cut by the end of the stream")
        elif (
            # Joined late, the content-type may be unknown: the framing can still tell.
            exchange.notes
            and not message.body_truncated
            and messages_by_framing(exchange, direction, message.body, ts, self.body_cap)
        ):
            self.connection.protocol = "grpc"
        if stream.client_done and stream.server_done:
            self._streams.pop(exchange.stream_id or 0, None)

    def _cut_grpc(self, stream: _Stream, ts: float, why: str) -> None:
        if stream.grpc is not None:
            stream.grpc.cut("in", ts, why)
            stream.grpc.cut("out", ts, why)

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
            if stream.grpc is not None:
                stream.grpc.feed(side.direction, data, ts)
        if piece.end_stream:
            if client:
                self._client_done(stream, ts)
            else:
                self._server_done(stream, ts)
        sink.exchange_changed(exchange)

    def _note_error(self, text: str) -> None:
        errors = self.connection.errors
        if len(errors) < _MAX_ERRORS:
            errors.append(text)
