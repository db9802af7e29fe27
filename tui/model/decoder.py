"""The interface every protocol decoder offers, so that a connection's bytes can move from one
to the next: from detection to HTTP/1.x, and from HTTP/1.x to whatever a ``101 Switching
Protocols`` (or an HTTP/2 client preface) starts.

A decoder is sans-IO: it is handed one direction's bytes (or the length of a gap) with their
capture time, updates the connection's exchanges in place and tells the sink what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from agent.events import Direction
from tui.model.flows import Exchange

__all__ = ["Direction", "ExchangeSink", "LossAwareDecoder", "ProtocolDecoder", "Switch"]


class ExchangeSink(Protocol):
    """Told about exchanges as they appear and change (the store's change record)."""

    def exchange_started(self, exchange: Exchange) -> None: ...

    def exchange_changed(self, exchange: Exchange) -> None: ...


class ProtocolDecoder(Protocol):
    """Decodes the rest of one connection's two byte streams into its exchanges."""

    def feed(self, direction: Direction, data: bytes, ts: float, sink: ExchangeSink) -> None:
        """``data`` arrived in ``direction``, captured at ``ts``."""
        ...

    def gap(self, direction: Direction, length: int, ts: float, sink: ExchangeSink) -> None:
        """``length`` bytes of ``direction`` were lost (the capture fell behind)."""
        ...

    def close(self, ts: float, sink: ExchangeSink) -> None:
        """The connection ended: what is still open will not get more bytes."""
        ...


@runtime_checkable
class LossAwareDecoder(ProtocolDecoder, Protocol):
    """A decoder that can be told of a loss of unknown size in both directions."""

    def lost(self, note: str, ts: float, sink: ExchangeSink) -> None:
        """Bytes of both directions, how many unknown, will never arrive: what is in
        progress ends incomplete (``note`` says why), nothing is joined across the hole."""
        ...


Switch = Callable[[ProtocolDecoder], None]
"""Makes the given decoder the one every later byte of the connection goes to."""
