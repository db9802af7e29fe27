"""Where HTTP/2 takes a connection over (see ``handoff``): after the client preface, after a
``101`` to ``h2c``, or joined mid-stream when the bytes hold HTTP/2 frames. The decoders made
keep bodies up to the cap of the store they decode for, and share its header cache."""

from __future__ import annotations

from tui.model.flows import Connection, Exchange
from tui.model.http2 import Http2Decoder
from tui.model.http2_frames import looks_like_http2
from tui.model.http2_headers import Http2HeaderCache


class Http2Hooks:
    """The hooks, for decoders that keep bodies up to ``body_cap`` and share ``cache``."""

    __slots__ = ("body_cap", "cache")

    def __init__(self, body_cap: int, cache: Http2HeaderCache) -> None:
        self.body_cap = body_cap
        self.cache = cache

    def after_preface(self, connection: Connection) -> Http2Decoder:
        """The client opened with the HTTP/2 preface (prior knowledge)."""
        return Http2Decoder(connection, self.body_cap, cache=self.cache)

    def after_upgrade(self, connection: Connection, exchange: Exchange) -> Http2Decoder | None:
        """A ``101`` to ``h2c``: stream 1 answers the HTTP/1.1 request that asked for it."""
        response = exchange.response
        if response is None or response.status != 101:
            return None
        tokens = ",".join(response.header_values("upgrade")).lower().split(",")
        if "h2c" not in (token.strip() for token in tokens):
            return None
        return Http2Decoder(connection, self.body_cap, upgraded=exchange, cache=self.cache)

    def joined_mid_stream(
        self, connection: Connection, client: bytes, server: bytes
    ) -> Http2Decoder | None:
        """Joined late: HTTP/2 if either direction's first bytes hold a run of frames."""
        if looks_like_http2(client) or looks_like_http2(server):
            return Http2Decoder(connection, self.body_cap, joined_late=True, cache=self.cache)
        return None
