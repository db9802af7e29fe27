"""Where a connection's bytes go once they stop being HTTP/1.x.

Three points hand a connection over: the client opening with the HTTP/2 preface (prior
knowledge, gRPC mostly), the first bytes of a connection joined mid-stream (when a decoder
recognises them: HTTP/2 frames), and a ``101 Switching Protocols`` answering an upgrade (``h2c``,
WebSocket) or a ``2xx`` accepting a ``CONNECT`` (a tunnel). At each, the hooks are asked in
order; the first decoder returned gets the connection's bytes from there on (those already
received after the switch point included). With no decoder, the bytes are counted but not
decoded.

A decoder for a new protocol plugs in by adding its hook to ``handoffs_for``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tui.model import http2_handoff, websocket
from tui.model.decoder import ProtocolDecoder
from tui.model.flows import Connection, Exchange
from tui.model.http2_headers import Http2HeaderCache

PRIOR_KNOWLEDGE_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

PrefaceHook = Callable[[Connection], ProtocolDecoder | None]
"""Given a connection whose client sent the HTTP/2 preface, its decoder (or None)."""

MidStreamHook = Callable[[Connection, bytes, bytes], ProtocolDecoder | None]
"""Given a connection joined mid-stream and the first bytes seen of each direction (client,
server), its decoder if those bytes are its protocol's (or None)."""

UpgradeHook = Callable[[Connection, Exchange], ProtocolDecoder | None]
"""Given the exchange that switched protocols (its request says what was asked for, its
response what the server switched to: a 101, or a 2xx to CONNECT) and its connection, the
decoder for what follows."""


@dataclass(frozen=True, slots=True)
class Handoffs:
    """The hooks asked at each switch point, in order."""

    after_preface: tuple[PrefaceHook, ...] = ()
    after_upgrade: tuple[UpgradeHook, ...] = ()
    mid_stream: tuple[MidStreamHook, ...] = ()

    def for_preface(self, connection: Connection) -> ProtocolDecoder | None:
        for hook in self.after_preface:
            decoder = hook(connection)
            if decoder is not None:
                return decoder
        return None

    def for_mid_stream(
        self, connection: Connection, client: bytes, server: bytes
    ) -> ProtocolDecoder | None:
        for hook in self.mid_stream:
            decoder = hook(connection, client, server)
            if decoder is not None:
                return decoder
        return None

    def for_upgrade(self, connection: Connection, exchange: Exchange) -> ProtocolDecoder | None:
        for hook in self.after_upgrade:
            decoder = hook(connection, exchange)
            if decoder is not None:
                return decoder
        return None


def handoffs_for(body_cap: int, http2_cache: Http2HeaderCache | None = None) -> Handoffs:
    """The hooks a store's decoders use, making decoders that keep bodies up to ``body_cap``
    and share the store's ``http2_cache`` (a new one when none is given)."""
    http2 = http2_handoff.Http2Hooks(body_cap, http2_cache or Http2HeaderCache())
    return Handoffs(
        after_preface=(http2.after_preface,),
        after_upgrade=(websocket.after_upgrade, http2.after_upgrade),
        mid_stream=(http2.joined_mid_stream,),
    )
