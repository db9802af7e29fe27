"""Decodes one tapped connection: tells from its first bytes which protocol it speaks, then
hands its bytes to that protocol's decoder.

* TLS (a ClientHello): the handshake's facts are kept (``tls.py``); the rest is opaque.
* The HTTP/2 client preface (prior knowledge, gRPC mostly): the preface hand-off hooks
  (``handoff.py``) name the decoder; with none, the connection is plain TCP.
* A method token and a space: HTTP/1.x (``http1.py``), which may in turn hand the connection
  over after a ``101 Switching Protocols``.
* Anything else, or the server speaking first: plain TCP, counted but not decoded.

A connection joined mid-stream (or whose first bytes are lost) has no first bytes to go by: the
mid-stream hooks are asked whether its bytes are theirs (HTTP/2 frames); else it is taken for
HTTP/1.x, which finds where its messages start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from tui.model.decoder import Direction, ExchangeSink, LossAwareDecoder, ProtocolDecoder
from tui.model.flows import Connection, Exchange
from tui.model.handoff import PRIOR_KNOWLEDGE_PREFACE, Handoffs, handoffs_for
from tui.model.http1 import Http1Decoder
from tui.model.http1_cache import Http1Cache
from tui.model.http1_framing import METHOD_PREFIX, REQUEST_START, STATUS_START
from tui.model.http2_frames import may_open_http2_server
from tui.model.tls import NeedMoreData, NotTls, looks_like_tls_record, parse_client_hello

__all__ = ["ConnectionDecoder", "ExchangeSink"]

_MAX_TLS_HELLO = 1 << 16
_MAX_LATE_SCAN = 1 << 16
"""Joined mid-stream, bytes looked at before settling for HTTP/1.x's own resynchronising."""
_MAX_START_LINE = 8100
"""Longer than any line ``REQUEST_START`` or ``STATUS_START`` matches."""

Chunk = tuple[Direction, bytes, float]


class ConnectionDecoder:
    """Decodes one connection's two byte streams into its ``exchanges``, in place, and keeps
    its byte counts and the first bytes of each direction (``raw_cap`` of them)."""

    def __init__(
        self,
        connection: Connection,
        body_cap: int = 65_536,
        raw_cap: int = 65_536,
        on_request: Callable[[Exchange], None] | None = None,
        *,
        cache: Http1Cache | None = None,
        handoffs: Handoffs | None = None,
    ) -> None:
        self.connection = connection
        self.body_cap = body_cap
        self.raw_cap = raw_cap
        self._on_request = on_request
        self._cache = cache if cache is not None else Http1Cache()
        self._handoffs = handoffs if handoffs is not None else handoffs_for(body_cap)
        self._decoder: ProtocolDecoder | None = None
        # Until the protocol is known: every chunk in order, and the client's bytes joined.
        self._detecting = True
        self._early: list[Chunk] = []
        self._client_head = bytearray()
        self._server_head = bytearray()
        # Joined mid-stream: no first bytes to go by, the protocol is told from what it says.
        self._late = connection.mid_stream
        self._late_asked = 0
        # How far each side was scanned for a start line (client, server).
        self._late_scanned = (0, 0)

    # --------------------------------------------------------------------------- input

    def feed(self, direction: Direction, data: bytes, ts: float, sink: ExchangeSink) -> None:
        conn = self.connection
        conn.last_seen = ts
        size = len(data)
        if direction == "in":
            conn.bytes_in += size
            raw = conn.raw_in
        else:
            conn.bytes_out += size
            raw = conn.raw_out
        room = self.raw_cap - len(raw)
        if room > 0 and not conn.raw_released:
            raw += data if size <= room else data[:room]
        if self._decoder is not None:
            self._decoder.feed(direction, data, ts, sink)
        elif self._detecting:
            self._early.append((direction, data, ts))
            if direction == "in":
                self._client_head += data
            elif len(self._server_head) < _MAX_LATE_SCAN:
                self._server_head += data
            if self._late:
                self._detect_late(direction, ts, sink)
            else:
                self._detect(direction, ts, sink)

    def gap(self, direction: Direction, length: int, ts: float, sink: ExchangeSink) -> None:
        conn = self.connection
        conn.gaps += 1
        conn.gap_bytes += length
        conn.last_seen = ts
        if self._decoder is None and self._detecting:
            # The start of the stream is lost: decode it as if joined mid-stream, now.
            self._late = True
            self._detect_late(direction, ts, sink, force=True)
        if self._decoder is not None:
            self._decoder.gap(direction, length, ts, sink)

    def lost(self, note: str, ts: float, sink: ExchangeSink) -> None:
        """Bytes of both directions, how many unknown, will never arrive (events the agent
        could not deliver, an agent gone); ``note`` says why on every exchange it touches."""
        if self._decoder is None and self._detecting:
            # The start of the stream may be lost: decode it as if joined mid-stream.
            self._decode_http1(joined_late=True)
        decoder = self._decoder
        if isinstance(decoder, LossAwareDecoder):
            decoder.lost(note, ts, sink)
        elif decoder is not None:
            # A decoder that cannot be told of a loss of unknown size is told of a gap.
            decoder.gap("in", 0, ts, sink)
            decoder.gap("out", 0, ts, sink)

    def close(self, ts: float, sink: ExchangeSink) -> None:
        if self._decoder is None and self._detecting and self._late:
            self._detect_late("in", ts, sink, force=True)
        if self._decoder is not None:
            self._decoder.close(ts, sink)

    def release(self) -> None:
        """Let go of the protocol's decoder, for good: the store forgets the connection. (That
        decoder holds a way back here to hand the connection over, a cycle that reference
        counting alone would never free.)"""
        self._decoder = None
        self._detecting = False

    # --------------------------------------------------------------------------- detection

    def _detect(self, fed: Direction, ts: float, sink: ExchangeSink) -> None:
        """Decide the protocol from the client's first bytes, once they say enough."""
        conn = self.connection
        client = self._client_head
        head = bytes(client[:24])
        if not head:
            server = self._server_head
            if server and not may_open_http2_server(server):
                # The server spoke first, and not an HTTP/2 server's SETTINGS: not HTTP.
                self._become("tcp")
            return
        if head[0] == 0x16:
            try:
                conn.tls = parse_client_hello(bytes(client[:_MAX_TLS_HELLO]))
            except NeedMoreData:
                if len(client) >= _MAX_TLS_HELLO:
                    self._become("tcp")
            except NotTls:
                self._become("tcp")
            else:
                self._become("tls")
            return
        preface = PRIOR_KNOWLEDGE_PREFACE
        if preface.startswith(head[: len(preface)]):
            if len(head) >= len(preface):
                self._prior_knowledge(sink)
            return
        prefix = METHOD_PREFIX.match(head)
        if prefix is None:
            self._become("tcp")
        elif prefix.group().endswith(b" "):
            conn.protocol = "http"
            self._decode_http1(joined_late=False).decode(ts, sink, fed)

    def _detect_late(
        self, fed: Direction, ts: float, sink: ExchangeSink, force: bool = False
    ) -> None:
        """Joined mid-stream: a decoder that recognises the bytes (HTTP/2 frames) takes them;
        else HTTP/1.x, once a start line shows (or enough was seen, or a gap or the close
        forces a decision), which resynchronises on its messages."""
        client, server = self._client_head, self._server_head
        seen = len(client) + len(server)
        decoder = None
        if force or seen >= 2 * self._late_asked:
            # Asked again each time the bytes double: a look at a few KiB is not repeated for
            # every segment of a connection that is neither.
            self._late_asked = seen
            decoder = self._handoffs.for_mid_stream(self.connection, bytes(client), bytes(server))
        if decoder is not None:
            self._hand_over(decoder, sink)
            return
        scanned = self._late_scanned
        self._late_scanned = (len(client), len(server))
        if (
            force
            or looks_like_tls_record(bytes(client[:3]))
            or _start_line_ends(REQUEST_START, client, scanned[0])
            or _start_line_ends(STATUS_START, server, scanned[1])
            or seen >= _MAX_LATE_SCAN
        ):
            self._decode_http1(joined_late=True).decode(ts, sink, fed)

    def _hand_over(self, decoder: ProtocolDecoder, sink: ExchangeSink) -> None:
        early = self._stop_detecting()
        self._decoder = decoder
        for direction, data, ts in early:
            decoder.feed(direction, data, ts, sink)

    def _prior_knowledge(self, sink: ExchangeSink) -> None:
        decoder = self._handoffs.for_preface(self.connection)
        if decoder is None:
            # HTTP/2 with prior knowledge (gRPC, mostly): binary framing h11 does not speak.
            self._become("tcp")
            self.connection.errors.append("HTTP/2 (not decoded: podtap decodes HTTP/1.x)")
            return
        self._hand_over(decoder, sink)

    def _decode_http1(self, joined_late: bool) -> Http1Decoder:
        """HTTP/1.x from here on, starting with the bytes seen so far (not decoded yet)."""
        decoder = Http1Decoder(
            self.connection,
            joined_late=joined_late,
            switch=self._switch,
            cache=self._cache,
            handoffs=self._handoffs,
            body_cap=self.body_cap,
            on_request=self._on_request,
        )
        for direction, data, ts in self._stop_detecting():
            decoder.receive(direction, data, ts)
        self._decoder = decoder
        return decoder

    def _switch(self, decoder: ProtocolDecoder) -> None:
        self._decoder = decoder

    def _become(self, protocol: Literal["tls", "tcp"]) -> None:
        self.connection.protocol = protocol
        self._stop_detecting()

    def _stop_detecting(self) -> list[Chunk]:
        early = self._early
        self._detecting = False
        self._early = []
        self._client_head = bytearray()
        self._server_head = bytearray()
        return early


def _start_line_ends(start: re.Pattern[bytes], data: bytearray, scanned: int) -> bool:
    """Whether a ``start`` line ends in ``data`` past ``scanned`` (nothing before did).

    Such a line ends with a newline, holds no other and is never longer than
    ``_MAX_START_LINE``: with no newline past ``scanned`` there is none, and the search begins
    at the later of the two bounds. Bytes arriving one at a time are each looked at a bounded
    number of times, not once per byte after them."""
    if data.find(b"\n", scanned) < 0:
        return False
    floor = max(scanned - _MAX_START_LINE, 0)
    begin = max(data.rfind(b"\n", floor, scanned), floor)
    return start.search(data, begin) is not None
