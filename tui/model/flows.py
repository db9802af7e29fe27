"""The flow model: connections and the HTTP exchanges decoded from them.

Plain mutable dataclasses, updated in place by the store as bytes arrive, so that views holding a
reference see the latest state. Nothing here parses or does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from agent.events import Direction

ConnectionKey = tuple[str, int]
"""(source, conn id): source is ``local`` or ``NAMESPACE/POD``; conn ids are per agent."""

Protocol = Literal["http", "h2", "grpc", "ws", "tls", "tcp", "unknown"]
"""``http`` is HTTP/1.x; ``h2`` HTTP/2 (prior knowledge or after an h2c upgrade); ``grpc`` an
HTTP/2 connection whose streams carry gRPC; ``ws`` WebSocket after a ``101``."""
ConnectionState = Literal["open", "closed", "reset"]


@dataclass(slots=True, eq=False)
class Message:
    """What requests and responses share. ``body`` is capped; ``body_length`` is the truth."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    trailers: Sequence[tuple[str, str]] = ()
    """Headers sent after a chunked body."""
    body: bytes = b""
    body_length: int = 0
    complete: bool = False

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    @property
    def body_truncated(self) -> bool:
        return self.body_length > len(self.body)


@dataclass(slots=True, eq=False)
class Request(Message):
    method: str = ""
    target: str = ""
    """The raw request target, as sent (origin, absolute, authority or asterisk form)."""
    path: str = ""
    """The target without its query string."""
    http_version: str = "1.1"
    host: str = ""


@dataclass(slots=True, eq=False)
class Response(Message):
    status: int = 0
    reason: str = ""
    http_version: str = "1.1"


@dataclass(slots=True, eq=False)
class StreamMessage:
    """One message carried inside an exchange: a WebSocket message or a gRPC message.

    ``data`` is the decoded payload (unmasked, inflated, joined across fragments), capped;
    ``length`` is its true length. ``kind`` is the WebSocket opcode name (``text``, ``binary``,
    ``ping``, ``pong``, ``close``) or ``grpc``. ``note`` is one line a person reads (a close code
    and reason, "compressed", "cut by a loss").
    """

    direction: Direction
    """``in``: client to server (the tapped service receives it); ``out``: server to client."""
    time: float
    kind: str
    data: bytes
    length: int
    note: str = ""


@dataclass(slots=True, eq=False)
class Exchange:
    """One request and the response paired with it (in order, per connection).

    ``latency_ms`` is the time from the last byte of the request to the first byte of the
    (final, non-1xx) response. When the request's end was not seen before the response began
    (early responses, ``Expect: 100-continue``, gaps), it is measured from the request's first
    byte instead. Times are capture times of the chunks that carried those bytes.
    """

    key: ConnectionKey
    index: int
    request: Request
    response: Response | None = None
    started: float = 0.0
    """Capture time of the request's first byte."""
    request_finished: float | None = None
    """Capture time of the request's last byte."""
    response_started: float | None = None
    """Capture time of the final response's first byte."""
    finished: float | None = None
    """Capture time of the response's last byte."""
    informational: Sequence[Response] = ()
    """1xx responses (100 Continue, 103 Early Hints) that came before the final one."""
    incomplete: bool = False
    """Bytes of this exchange were lost (an agent-reported gap)."""
    error: str | None = None
    """Why this exchange could not be decoded fully (malformed input)."""
    upgraded: bool = False
    """The connection switched protocols here (101 or CONNECT): what follows is raw."""
    stream_id: int | None = None
    """The HTTP/2 stream that carried this exchange (None for HTTP/1.x)."""
    messages: list[StreamMessage] = field(default_factory=list)
    """WebSocket messages after this exchange's 101, or the gRPC messages of this call."""
    notes: list[str] = field(default_factory=list)
    """What a person should know about how this exchange was seen: "reset by the client
    (CANCEL)", "headers incomplete (joined mid-stream)", "ambiguous framing"…"""

    @property
    def latency_ms(self) -> float | None:
        if self.response_started is None:
            return None
        since = self.request_finished
        if since is None or since > self.response_started:
            since = self.started
        return max(0.0, (self.response_started - since) * 1000.0)

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status


@dataclass(slots=True, eq=False)
class TlsInfo:
    """What a TLS ClientHello tells in clear text."""

    sni: str | None = None
    alpn: list[str] = field(default_factory=list)
    version: str = ""


@dataclass(slots=True, eq=False)
class Connection:
    key: ConnectionKey
    source: str
    conn: int
    client: str
    client_port: int
    server: str
    server_port: int
    opened: float
    interface: str = ""
    closed: float | None = None
    close_reason: str | None = None
    mid_stream: bool = False
    protocol: Protocol = "unknown"
    """Decided from the first bytes the client sent."""
    tls: TlsInfo | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    last_seen: float = 0.0
    exchanges: list[Exchange] = field(default_factory=list, repr=False)
    raw_in: bytearray = field(default_factory=bytearray, repr=False)
    """The first bytes the client sent (capped), for the raw view."""
    raw_out: bytearray = field(default_factory=bytearray, repr=False)
    """The first bytes the server sent (capped), for the raw view."""
    last_status: int | None = None
    last_grpc_status: str | None = None
    """The gRPC status (``OK``, ``NOT_FOUND``…) the last call to finish ended with, if it
    carried one: it says more than the HTTP 200 its response began with."""
    raw_released: bool = False
    """raw_in/raw_out were emptied (and stopped growing) to keep the store within its budget."""
    errors: list[str] = field(default_factory=list)
    """Undecodable input that belongs to no exchange (a few, the first ones)."""
    exchanges_dropped: int = 0
    """Exchanges of this connection evicted by the store's cap (oldest first)."""

    @property
    def requests(self) -> int:
        return len(self.exchanges) + self.exchanges_dropped

    @property
    def state(self) -> ConnectionState:
        if self.closed is None:
            return "open"
        return "reset" if self.close_reason == "rst" else "closed"

    @property
    def raw_truncated_in(self) -> bool:
        return self.bytes_in > len(self.raw_in)

    @property
    def raw_truncated_out(self) -> bool:
        return self.bytes_out > len(self.raw_out)
