"""Building TCP segments by hand and reading back what the reassembler made of them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.events import AnyEvent, ConnectionClosed, ConnectionOpened, DataReceived, Gap
from agent.packet import ACK, FIN, RST, SYN, Segment

MASK = 0xFFFF_FFFF
CLIENT_IP = bytes([198, 18, 0, 1])
SERVER_IP = bytes([198, 18, 0, 2])
SERVER_PORT = 8080


@dataclass(frozen=True)
class Flow:
    """One connection's endpoints and initial sequence numbers. Offsets count stream bytes from
    0 (the first data byte), so tests never do sequence arithmetic themselves."""

    client_isn: int = 1000
    server_isn: int = 5000
    client_port: int = 40000
    server_port: int = SERVER_PORT
    client_ip: bytes = CLIENT_IP
    server_ip: bytes = SERVER_IP

    def seq(self, direction: str, offset: int) -> int:
        isn = self.client_isn if direction == "in" else self.server_isn
        return (isn + 1 + offset) & MASK

    def segment(
        self,
        direction: str,
        offset: int,
        data: bytes = b"",
        flags: int = ACK,
        ack: int | None = None,
    ) -> Segment:
        """A segment of ``direction`` carrying ``data`` at stream ``offset``; ``ack`` is the
        peer's stream offset acknowledged (None: acknowledge nothing of the peer's data)."""
        peer = "out" if direction == "in" else "in"
        ack_seq = self.seq(peer, ack if ack is not None else 0)
        if direction == "in":
            ends = (self.client_ip, self.client_port, self.server_ip, self.server_port)
        else:
            ends = (self.server_ip, self.server_port, self.client_ip, self.client_port)
        return Segment(*ends, self.seq(direction, offset), ack_seq, flags, data)

    def syn(self) -> Segment:
        return Segment(
            self.client_ip, self.client_port, self.server_ip, self.server_port,
            self.client_isn, 0, SYN, b"",
        )  # fmt: skip

    def syn_ack(self) -> Segment:
        return Segment(
            self.server_ip, self.server_port, self.client_ip, self.client_port,
            self.server_isn, self.seq("in", 0), SYN | ACK, b"",
        )  # fmt: skip

    def fin(self, direction: str, offset: int, ack: int | None = None) -> Segment:
        return self.segment(direction, offset, b"", FIN | ACK, ack)

    def rst(self, direction: str, offset: int) -> Segment:
        return self.segment(direction, offset, b"", RST | ACK)


Piece = tuple[str, bytes | int]
"""("data", bytes) or ("gap", length)."""


@dataclass
class Transcript:
    """Everything the reassembler emitted, sorted by connection and direction."""

    events: list[AnyEvent] = field(default_factory=list)

    def extend(self, events: Iterable[AnyEvent]) -> None:
        self.events.extend(events)

    def opened(self) -> list[ConnectionOpened]:
        return [e for e in self.events if isinstance(e, ConnectionOpened)]

    def closed(self) -> list[ConnectionClosed]:
        return [e for e in self.events if isinstance(e, ConnectionClosed)]

    def gaps(self, conn: int | None = None) -> list[Gap]:
        return [e for e in self.events if isinstance(e, Gap) and conn in (None, e.conn)]

    def pieces(self, conn: int, direction: str) -> list[Piece]:
        """The direction's stream as merged runs of data and gaps."""
        merged: list[Piece] = []
        for event in self.events:
            if isinstance(event, DataReceived | Gap) and event.conn == conn:
                if event.direction != direction:
                    continue
                kind, value = (
                    ("data", event.data)
                    if isinstance(event, DataReceived)
                    else ("gap", event.length)
                )
                if merged and merged[-1][0] == kind:
                    previous = merged[-1][1]
                    assert isinstance(previous, type(value))
                    merged[-1] = (kind, previous + value)  # type: ignore[operator]
                else:
                    merged.append((kind, value))
        return merged

    def stream(self, conn: int, direction: str) -> bytes:
        """The direction's bytes; fails if any gap was reported."""
        pieces = self.pieces(conn, direction)
        assert all(kind == "data" for kind, _ in pieces), pieces
        return b"".join(value for _, value in pieces if isinstance(value, bytes))


def expected_pieces(data: bytes, seen: bytearray) -> list[Piece]:
    """What a direction should read as when only the bytes marked in ``seen`` were captured."""
    pieces: list[Piece] = []
    start = 0
    while start < len(data):
        end = start
        while end < len(data) and bool(seen[end]) == bool(seen[start]):
            end += 1
        pieces.append(("data", data[start:end]) if seen[start] else ("gap", end - start))
        start = end
    return pieces
