"""The streams of one tapped HTTP/2 connection, each one exchange: what each side has sent on
it so far (request headers and body, response headers, body and trailers), the gRPC call it may
carry, and what a reset, a GOAWAY or a loss does to it.

The connection-level reading (frames, header blocks, settings) is ``http2``'s: it hands this
table decoded header lists and DATA pieces by stream. The table believes what it is told and
never invents: a response or DATA for a stream whose request was not seen is passed over.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui.model.decoder import Direction, ExchangeSink
from tui.model.flows import Connection, Exchange, Message, Request
from tui.model.grpc import GrpcCall, call_status, is_grpc, messages_by_framing
from tui.model.http2_frames import DataPiece
from tui.model.http2_headers import Headers, request_from, response_from

_MAX_OPEN_STREAMS = 1000
"""Streams followed at once; past it the oldest is let go (peers usually allow 100)."""


@dataclass(slots=True, eq=False)
class _Stream:
    """What both sides have sent on one stream, as far as seen."""

    exchange: Exchange
    client_done: bool = False
    server_done: bool = False
    grpc: GrpcCall | None = None


class StreamTable:
    """The streams of ``connection`` being followed, each assembling its exchange."""

    __slots__ = ("_highest_client_stream", "_streams", "body_cap", "connection")

    def __init__(self, connection: Connection, body_cap: int) -> None:
        self.connection = connection
        self.body_cap = body_cap
        self._streams: dict[int, _Stream] = {}
        self._highest_client_stream = 0

    def adopt(self, exchange: Exchange) -> None:
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

    # ------------------------------------------------------------------------------- headers

    def client_headers(
        self, stream_id: int, headers: Headers, end_stream: bool, ts: float, sink: ExchangeSink
    ) -> Exchange | None:
        """A request's headers (a new stream) or its trailers; the exchange they belong to."""
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
        if end_stream:
            self._client_done(stream, ts)
        return stream.exchange

    def server_headers(
        self, stream_id: int, headers: Headers, end_stream: bool, ts: float
    ) -> Exchange | None:
        """A response's headers (informational or final) or its trailers."""
        stream = self._streams.get(stream_id)
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
        if end_stream:
            self._server_done(stream, ts)
        return exchange

    # ------------------------------------------------------------------------------- data

    def data(self, client: bool, piece: DataPiece, ts: float, sink: ExchangeSink) -> None:
        """Part of a DATA frame, from the client when ``client``."""
        stream = self._streams.get(piece.stream_id)
        if stream is None:
            return
        exchange = stream.exchange
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
                stream.grpc.feed("in" if client else "out", data, ts)
        if piece.end_stream:
            if client:
                self._client_done(stream, ts)
            else:
                self._server_done(stream, ts)
        sink.exchange_changed(exchange)

    # ------------------------------------------------------------------------------- trouble

    def mark_incomplete(self, stream_id: int, sink: ExchangeSink) -> None:
        """A frame of the stream could not be read."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.exchange.incomplete = True
            sink.exchange_changed(stream.exchange)

    def reset(self, stream_id: int, note: str, ts: float, sink: ExchangeSink) -> None:
        """RST_STREAM: the stream ends here; ``note`` says who reset it and why."""
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        exchange = stream.exchange
        exchange.notes.append(note)
        if exchange.finished is None:
            exchange.finished = ts
        self._cut_grpc(stream, ts, "cut by the reset")
        sink.exchange_changed(exchange)

    def not_processed(self, last_stream_id: int, note: str, sink: ExchangeSink) -> None:
        """GOAWAY: the client's streams past ``last_stream_id`` were not processed."""
        for stream_id, stream in self._streams.items():
            if stream_id > last_stream_id and stream_id % 2 == 1:
                stream.exchange.notes.append(note + ": this stream was not processed")
                sink.exchange_changed(stream.exchange)

    def lost(self, direction: Direction, ts: float, sink: ExchangeSink) -> None:
        """Bytes of one direction were lost where no frame boundary is known: every stream
        that direction was still sending on misses some."""
        for stream in self._streams.values():
            if not (stream.client_done if direction == "in" else stream.server_done):
                stream.exchange.incomplete = True
                if stream.grpc is not None:
                    stream.grpc.cut(direction, ts, "cut by a loss")
                sink.exchange_changed(stream.exchange)

    def lost_in_body(
        self, direction: Direction, stream_id: int, length: int, sink: ExchangeSink
    ) -> None:
        """A loss inside one DATA frame: only that body misses bytes; the rest decodes on."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        exchange = stream.exchange
        exchange.incomplete = True
        message = exchange.request if direction == "in" else exchange.response
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
