"""Agent events that replay decoded traffic: connections and exchanges back into bytes.

A HAR file, or the app's filtered view, holds decoded exchanges, not the bytes that carried
them. To open a HAR in the app, or to write the view as JSON lines or pcap, each exchange is put
back on the wire as HTTP/1.x: request line, headers and body at the request's time, the status
line, headers and body at the response's time, and after a switch to WebSocket each message
as a frame at its own time. The headers are kept as they were, so the body
is framed to match them (one chunk when they say chunked), and body bytes that were not kept
(bodies beyond the cap) become a ``Gap`` of the missing length rather than made-up bytes.
HTTP/2 connections are put back as HTTP/2 frames (``replay_h2``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from agent.events import (
    AnyEvent,
    CloseReason,
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    Direction,
    Gap,
)
from tui.model.flows import Connection, Exchange, Message, Request, Response, StreamMessage
from tui.model.websocket import OPCODES
from tui.output.replay_h2 import Http2Replay


def _is_chunked(message: Message) -> bool:
    return any("chunked" in value.lower() for value in message.header_values("transfer-encoding"))


def _head(start_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [start_line, *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


@dataclass(slots=True)
class _Pieces:
    """One message as bytes and holes, in order: ``bytes`` chunks and ``int`` missing lengths."""

    parts: list[bytes | int] = field(default_factory=list)

    def add(self, data: bytes) -> None:
        if data:
            self.parts.append(data)

    def missing(self, length: int) -> None:
        if length > 0:
            self.parts.append(length)


def _message_pieces(start_line: str, message: Message, *, bodiless: bool) -> _Pieces:
    pieces = _Pieces()
    pieces.add(_head(start_line, message.headers))
    if bodiless:
        return pieces
    body = message.body
    missing = max(0, message.body_length - len(body))
    if _is_chunked(message):
        if message.body_length:
            pieces.add(f"{message.body_length:x}\r\n".encode() + body)
            pieces.missing(missing)
            pieces.add(b"\r\n")
        pieces.add(b"0\r\n" + _head("", message.trailers)[2:])
    else:
        pieces.add(body)
        pieces.missing(missing)
    return pieces


def request_pieces(request: Request) -> _Pieces:
    return _message_pieces(
        f"{request.method} {request.target or request.path or '/'} HTTP/{request.http_version}",
        request,
        bodiless=False,
    )


def response_pieces(response: Response, method: str) -> _Pieces:
    bodiless = (
        method == "HEAD"
        or response.status < 200
        or response.status in (204, 304)
        or (method == "CONNECT" and 200 <= response.status < 300)
    )
    return _message_pieces(
        f"HTTP/{response.http_version} {response.status} {response.reason}".rstrip(),
        response,
        bodiless=bodiless,
    )


class ReplayNumbering:
    """Hands out connection ids and event sequence numbers for one replayed source."""

    def __init__(self) -> None:
        self.next_conn = 0
        self.next_seq = 1

    def conn_id(self) -> int:
        self.next_conn += 1
        return self.next_conn - 1

    def seq(self) -> int:
        self.next_seq += 1
        return self.next_seq - 1


def _data_events(
    conn: int,
    direction: Direction,
    pieces: _Pieces,
    times: tuple[float, float | None],
    numbering: ReplayNumbering,
) -> Iterator[AnyEvent]:
    """The pieces at ``times[0]``; the very last byte at ``times[1]`` when that is later, so
    that the decoder sees the message end when it did (latencies come out right)."""
    start, end = times
    parts = list(pieces.parts)
    last_byte: bytes | None = None
    if end is not None and end > start and parts and isinstance(parts[-1], bytes):
        tail = parts.pop()
        assert isinstance(tail, bytes)
        if len(tail) > 1:
            parts.append(tail[:-1])
        last_byte = tail[-1:]
    for part in parts:
        if isinstance(part, int):
            yield Gap(seq=numbering.seq(), ts=start, conn=conn, direction=direction, length=part)
        else:
            yield DataReceived(
                seq=numbering.seq(), ts=start, conn=conn, direction=direction, data=part
            )
    if last_byte is not None:
        assert end is not None
        yield DataReceived(
            seq=numbering.seq(), ts=end, conn=conn, direction=direction, data=last_byte
        )


def exchange_events(
    conn: int, exchange: Exchange, numbering: ReplayNumbering
) -> Iterator[AnyEvent]:
    """The request's bytes, the 1xx responses, then the final response (if any)."""
    request = exchange.request
    if request.method:  # else it is a response's stand-in: the request was never seen
        yield from _data_events(
            conn,
            "in",
            request_pieces(request),
            (exchange.started, exchange.request_finished),
            numbering,
        )
    answered = exchange.response_started or exchange.request_finished or exchange.started
    for informational in exchange.informational:
        yield from _data_events(
            conn, "out", response_pieces(informational, request.method), (answered, None), numbering
        )
    if exchange.response is not None:
        yield from _data_events(
            conn,
            "out",
            response_pieces(exchange.response, request.method),
            (answered, exchange.finished),
            numbering,
        )
    for message in exchange.messages:
        yield DataReceived(
            seq=numbering.seq(),
            ts=message.time,
            conn=conn,
            direction=message.direction,
            data=websocket_frame(message),
        )


def websocket_frame(message: StreamMessage) -> bytes:
    """One WebSocket message as a single frame (uncompressed; a client's masked, with a key of
    zeros, which leaves the payload as it is)."""
    opcode = OPCODES.get(message.kind, 2)
    payload = message.data
    if message.kind == "close":
        code = message.note.split(" ", 1)[0]
        payload = int(code).to_bytes(2, "big") + payload if code.isdigit() else b""
    size = len(payload)
    mask = 0x80 if message.direction == "in" else 0
    if size < 126:
        head = bytes([0x80 | opcode, mask | size])
    elif size < 1 << 16:
        head = bytes([0x80 | opcode, mask | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, mask | 127]) + size.to_bytes(8, "big")
    return head + (bytes(4) if mask else b"") + payload


def connection_events(
    connection: Connection, exchanges: Iterable[Exchange], numbering: ReplayNumbering
) -> Iterator[AnyEvent]:
    """A whole connection: opened, its exchanges (or its raw bytes when it is not HTTP, as far
    as they were kept), closed if it was."""
    conn = numbering.conn_id()
    yield ConnectionOpened(
        seq=numbering.seq(),
        ts=connection.opened,
        conn=conn,
        client=connection.client,
        client_port=connection.client_port,
        server=connection.server,
        server_port=connection.server_port,
        interface=connection.interface,
        mid_stream=connection.mid_stream,
    )
    last = connection.opened
    if connection.protocol in ("h2", "grpc"):
        replay = Http2Replay(conn, numbering.seq)
        yield from replay.opening(connection.opened)
        for exchange in exchanges:
            yield from replay.exchange(exchange)
            last = max(last, exchange.finished or exchange.started)
    elif connection.protocol in ("http", "ws"):
        for exchange in exchanges:
            yield from exchange_events(conn, exchange, numbering)
            last = max(last, exchange.finished or exchange.started)
    else:
        for direction, raw in (("in", connection.raw_in), ("out", connection.raw_out)):
            if raw:
                yield DataReceived(
                    seq=numbering.seq(),
                    ts=connection.last_seen or last,
                    conn=conn,
                    direction="in" if direction == "in" else "out",
                    data=bytes(raw),
                )
    if connection.closed is not None:
        reason: CloseReason = "rst" if connection.close_reason == "rst" else "fin"
        yield ConnectionClosed(
            seq=numbering.seq(), ts=max(connection.closed, last), conn=conn, reason=reason
        )
