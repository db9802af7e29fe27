"""What the demo's clients report: one line per call they made and what came back."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientCall:
    """One call a demo client made (an HTTP request, a cache command, a TLS hello, a gRPC call,
    a chat message) and what came back."""

    client: str
    kind: str
    """keep-alive, short, probe, cache, tls, grpc, h2c (upgraded), h2 (prior knowledge) or
    ws."""
    request: str
    outcome: str
    """The HTTP status, the cache reply, ``alert`` for TLS, the gRPC status (``OK``,
    ``NOT_FOUND``), ``sent`` for a chat message, or ``error: ...``."""
    elapsed: float
    connection: int = 0
    """Which of the generator's TCP connections carried it (numbered from 1; 0: none)."""

    def line(self) -> str:
        return (
            f"{self.client:<10} {self.kind:<10} #{self.connection:<5} {self.request:<40} "
            f"-> {self.outcome} ({self.elapsed * 1000:.1f} ms)"
        )
