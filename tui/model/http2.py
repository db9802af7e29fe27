"""HTTP/2 decoding of one tapped connection, both directions: each stream is one exchange.

hyperframe cuts frames and hpack decodes header blocks, one decoder per direction, but the
connection state machine of python-hyper's h2 is an endpoint's: it refuses what its peer may not
send and answers what it receives. A tap watches both sides, so it keeps its own table of
streams (what each side has sent so far), believes what it sees, and never invents.

Joined mid-stream or after a loss, a direction's header table is partly unknown (see
``http2_headers``): exchanges whose headers referred to unknown entries say so in their notes.
Bytes are never spliced across a gap: the direction resynchronises on a plausible frame boundary
and every stream it was carrying is marked incomplete.

This module reads the connection: frames, header blocks, settings, GOAWAY. What each stream's
exchange becomes from the header lists and DATA it is handed is ``http2_streams``'.
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
from tui.model.flows import Connection, Exchange
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
    Http2HeaderCache,
)
from tui.model.http2_streams import StreamTable

__all__ = ["AFTER_A_LOSS", "JOINED_MID_STREAM", "Http2Decoder"]

_MAX_ERRORS = 20
_HEADER_FRAMES = (1, 5, 9)
"""HEADERS, PUSH_PROMISE, CONTINUATION: frames whose loss leaves the header table unknown."""


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

    __slots__ = ("block", "client", "direction", "headers", "reader")

    def __init__(
        self, direction: Direction, joined_late: bool, preface: bool, cache: Http2HeaderCache
    ) -> None:
        self.direction: Direction = direction
        self.client = direction == "in"
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
        self._streams = StreamTable(connection, body_cap)
        if connection.protocol not in ("h2", "grpc"):
            connection.protocol = "h2"
        if upgraded is not None:
            self._streams.adopt(upgraded)

    # ------------------------------------------------------------------------------- input

    def feed(self, direction: Direction, data: bytes, ts: float, sink: ExchangeSink) -> None:
        side = self._in if direction == "in" else self._out
        reader = side.reader
        reader.feed(data)
        streams = self._streams
        item = reader.next()
        while item is not None:
            if type(item) is DataPiece:
                streams.data(side.client, item, ts, sink)
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
            self._streams.lost_in_body(direction, *inside, sink)
            return
        side.reader.lose()
        side.block = None
        side.headers.lose_table(AFTER_A_LOSS)
        self._streams.lost(direction, ts, sink)

    def close(self, ts: float, sink: ExchangeSink) -> None:
        self._streams.close(ts, sink)

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
        self._streams.mark_incomplete(item.stream_id, sink)
        if item.frame_type in _HEADER_FRAMES:
            side.block = None
            side.headers.lose_table(AFTER_A_LOSS)

    def _goaway(self, side: _Side, frame: GoAwayFrame, sink: ExchangeSink) -> None:
        code = error_name(frame.error_code)
        note = f"{side.who} sent GOAWAY ({code}, last stream {frame.last_stream_id})"
        if frame.error_code:
            self._note_error(note)
        self._streams.not_processed(frame.last_stream_id, note, sink)

    def _reset(self, side: _Side, frame: RstStreamFrame, ts: float, sink: ExchangeSink) -> None:
        note = f"reset by {side.who} ({error_name(frame.error_code)})"
        self._streams.reset(frame.stream_id, note, ts, sink)

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
        self._streams.mark_incomplete(block.stream_id, sink)

    def _block_done(self, side: _Side, block: _Block, ts: float, sink: ExchangeSink) -> None:
        data = block.fragments[0] if len(block.fragments) == 1 else b"".join(block.fragments)
        headers, unknown, error = side.headers.decode(data)
        if block.promise:
            return  # Server push: the pushed response has no request on the wire.
        if side.client:
            exchange = self._streams.client_headers(
                block.stream_id, headers, block.end_stream, ts, sink
            )
        else:
            exchange = self._streams.server_headers(block.stream_id, headers, block.end_stream, ts)
        if exchange is None:
            return
        why = side.headers.why_partial
        if unknown and why not in exchange.notes:
            exchange.notes.append(why)
        if error:
            exchange.error = error
            exchange.incomplete = True
        sink.exchange_changed(exchange)

    def _note_error(self, text: str) -> None:
        errors = self.connection.errors
        if len(errors) < _MAX_ERRORS:
            errors.append(text)
