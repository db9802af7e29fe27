"""``podtap dump``'s text: the lines ``mirrord dump`` prints, for the same events.

    ## New connection established: Connection ID 0 from 10.0.0.7:55534 to 10.0.0.9:80
    ## Connection ID 0: 93 bytes
    Data: GET /health HTTP/1.1
    Host: 10.0.0.9
    <blank line>
    ## Connection ID 0 closed
    <blank line>

The data is printed as received (CRLF line ends included); every data block ends with one blank
line. Where mirrord has nothing to say, podtap keeps mirrord's shape and adds to it:

- ``Data (hex): 16 03 01 ...`` when the bytes are not UTF-8 (space-separated hex pairs; mirrord
  prints a list of decimal numbers under the same label);
- with ``responses``, the server's bytes as ``## Connection ID N: K bytes (response)``;
- ``## Connection ID N: K bytes missing`` where the agent could not see part of a stream. This
  goes to stdout with the data, not to stderr: it is data loss that whoever reads the dump must
  see at the place where it happened. ``## N events lost (...)`` likewise when the agent's
  journal could not keep events for this client;
- a reason after ``closed`` unless the connection ended normally (``closed (reset)``), and
  ``(already open when capture started)`` after a connection joined mid-stream;
- ``## [SOURCE] ...`` in front of every line of ``##`` when several agents (pods) are tapped,
  since each numbers its connections from 0.

:class:`TextFormatter` is pure (events in, text out); :class:`TextWriter` puts it on a stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from agent.events import (
    AnyEvent,
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    EventsLost,
    Gap,
)
from tui.model.flows import Connection, ConnectionKey, Exchange, Response, StreamMessage
from tui.model.protobuf_raw import render as render_protobuf
from tui.model.secrets import mask_text, mask_url, masked_headers
from tui.model.store import Store, StoreChange
from tui.model.terminal_text import one_line, terminal_safe
from tui.model.updates import AgentEvent, Update

_CLOSE_REASONS = {
    "fin": "",
    "rst": " (reset)",
    "idle": " (idle, no longer tracked)",
    "evicted": " (evicted: too many connections tracked)",
    "shutdown": " (capture stopped)",
}

_LOST_REASONS = {
    "journal": "the agent's journal no longer held them",
    "slow-client": "podtap read too slowly",
}


def address(host: str, port: int) -> str:
    """``host:port``, with IPv6 hosts in brackets as in URLs."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def data_block(data: bytes) -> str:
    """``Data: ...`` for UTF-8 text, else ``Data (hex): ...``; always ends with a blank line."""
    try:
        return _text_block(data.decode("utf-8"))
    except UnicodeDecodeError:
        return _hex_block(data)


def _text_block(text: str) -> str:
    text = "Data: " + text
    if text.endswith("\n\n") or text.endswith("\n\r\n"):
        return text
    return text + "\n" if text.endswith("\n") else text + "\n\n"


def _hex_block(data: bytes) -> str:
    return f"Data (hex): {data.hex(' ')}\n\n"


def _split_incomplete_tail(data: bytes) -> tuple[str, bytes] | None:
    """The text of ``data`` and its last bytes when those are only the start of a character
    that the next chunk completes; None when ``data`` is not UTF-8 text."""
    try:
        return data.decode("utf-8"), b""
    except UnicodeDecodeError as error:
        if error.reason != "unexpected end of data" or error.end != len(data):
            return None
        try:
            return data[: error.start].decode("utf-8"), data[error.start :]
        except UnicodeDecodeError:
            return None


class TextFormatter:
    """Turns events into mirrord-dump text. ``responses`` adds the server's side;
    ``show_source`` prefixes ``##`` lines with the agent they came from.

    Text is decoded per direction of a connection, not per chunk: a character split between
    two chunks is printed with the second, so UTF-8 bodies do not turn into hex at chunk
    boundaries. Each chunk's header still gives its own size, as mirrord's does.
    """

    def __init__(
        self, *, responses: bool = False, show_source: bool = False, escape: bool = False
    ) -> None:
        self.responses = responses
        self.show_source = show_source
        self.escape = escape
        """Show control characters in the data as ``\\x1b`` (for a terminal; a pipe or a file
        gets the bytes as sent)."""
        self._partial: dict[tuple[str, int, str], bytes] = {}

    def format(self, source: str, event: AnyEvent) -> str:
        """The text for one event ("" for events that print nothing, e.g. Hello and Stats)."""
        mark = f"## [{source}] " if self.show_source else "## "
        if isinstance(event, DataReceived):
            if event.direction == "in":
                head = f"{mark}Connection ID {event.conn}: {len(event.data)} bytes\n"
            elif self.responses:
                head = f"{mark}Connection ID {event.conn}: {len(event.data)} bytes (response)\n"
            else:
                return ""
            return head + self._data(source, event)
        if isinstance(event, ConnectionOpened):
            joined = " (already open when capture started)" if event.mid_stream else ""
            return (
                f"{mark}New connection established: Connection ID {event.conn} from "
                f"{address(event.client, event.client_port)} to "
                f"{address(event.server, event.server_port)}{joined}\n"
            )
        if isinstance(event, ConnectionClosed):
            self._partial.pop((source, event.conn, "in"), None)
            self._partial.pop((source, event.conn, "out"), None)
            return f"{mark}Connection ID {event.conn} closed{_CLOSE_REASONS[event.reason]}\n\n"
        if isinstance(event, Gap):
            # Bytes are missing: a character cut there can never be completed.
            self._partial.pop((source, event.conn, event.direction), None)
            if event.direction == "out" and not self.responses:
                return ""
            side = " (response)" if event.direction == "out" else ""
            return f"{mark}Connection ID {event.conn}: {event.length} bytes missing{side}\n"
        if isinstance(event, EventsLost):
            # Any of this agent's connections may have lost bytes here: no character is
            # completed across the hole.
            for key in [key for key in self._partial if key[0] == source]:
                del self._partial[key]
            why = _LOST_REASONS.get(event.reason, event.reason)
            return f"{mark}{event.count} events lost ({why})\n"
        return ""

    def _data(self, source: str, event: DataReceived) -> str:
        key = (source, event.conn, event.direction)
        data = self._partial.pop(key, b"") + event.data
        split = _split_incomplete_tail(data)
        if split is None:
            return _hex_block(data)
        text, tail = split
        if tail:
            self._partial[key] = tail
        return _text_block(terminal_safe(text) if self.escape else text)

    def format_updates(self, updates: Sequence[Update]) -> str:
        """The text for the events among ``updates`` (statuses and notes print nothing)."""
        fmt = self.format
        return "".join(
            [fmt(u.source, u.event) for u in updates if isinstance(u, AgentEvent)]
        )


class TextWriter:
    """Writes formatted updates to a binary stream, flushed per batch so pipes see it live."""

    def __init__(self, stream: BinaryIO, formatter: TextFormatter) -> None:
        self._stream = stream
        self.formatter = formatter

    def write(self, updates: Sequence[Update]) -> None:
        text = self.formatter.format_updates(updates)
        if text:
            self._stream.write(text.encode("utf-8", "surrogateescape"))
            self._stream.flush()


class ExchangeTextFormatter:
    """``podtap dump --http``: decoded exchanges, one block per request and per response.

        ## Request [3:0] from 198.18.0.1:40512 to 198.18.0.2:8080
        GET /api/users?id=7 HTTP/1.1
        Host: shop.local
        <blank line>
        ## Response [3:0] 200 OK (12.3 ms)
        Content-Type: application/json
        <blank line>

    ``[C:R]`` is the connection id and the request's index on that connection. A request is
    printed once its headers are decoded, its response likewise; ``(incomplete)`` marks one that
    lost bytes to a gap and ``could not be decoded`` one that is not valid HTTP. Every line is
    shown terminal-safe (control characters escaped), whatever the output is.

    A ``1xx`` response gets a block of its own before the final one. Trailers follow a request's
    or a response's headers under a ``Trailers:`` line: a message that announces them
    (``Trailer:``) is printed once complete; trailers nobody announced come in a block of their
    own (``## Request [C:R] trailers``). After a
    switch to WebSocket, each message is a block, ``## WebSocket [C:R] client → server text
    (5 bytes)``, followed by its text (or ``Data (hex):``).

    An HTTP/2 request says its stream after ``[C:R]`` (``stream 3``) and its request line is
    ``GET /page HTTP/2``. Each gRPC message is a block, ``## gRPC [C:R] client → server message
    (7 bytes)``, followed by its fields as ``protoc --decode_raw`` shows them.
    """

    _REMEMBERED = 200_000

    def __init__(self, *, show_source: bool = False, reveal: bool = False) -> None:
        self.show_source = show_source
        self.reveal = reveal
        """Print secret header values (Authorization, Cookie, ...) as sent, not masked."""
        # Per exchange: how much of it was printed. Oldest forgotten past the cap.
        self._printed: dict[tuple[ConnectionKey, int], _Printed] = {}

    def format_change(
        self, change: StoreChange, connection_of: Callable[[ConnectionKey], Connection | None]
    ) -> str:
        parts: list[str] = []
        for exchange in (*change.new_exchanges, *change.changed_exchanges):
            ident = (exchange.key, exchange.index)
            printed = self._printed.get(ident)
            if printed is None:
                if _request_awaits_trailers(exchange):
                    continue
                parts.append(self._request(exchange, connection_of(exchange.key)))
                self._printed[ident] = printed = _Printed()
                if len(self._printed) > self._REMEMBERED:
                    del self._printed[next(iter(self._printed))]
                if exchange.request.trailers:
                    parts[-1] = parts[-1][:-1] + self._trailers(exchange.request.trailers)
                    printed.request_trailers = True
            self._rest(exchange, printed, parts)
        return "".join(parts)

    def _rest(self, exchange: Exchange, printed: _Printed, parts: list[str]) -> None:
        """What of ``exchange`` came since it was last printed: 1xx responses, the response,
        its trailers, WebSocket messages and notes."""
        trailers = exchange.request.trailers
        if trailers and not printed.request_trailers:
            head = f"{self._mark(exchange)}Request {_ident(exchange)} trailers\n"
            parts.append(head + self._trailers(trailers))
            printed.request_trailers = True
        for early in exchange.informational[printed.informational :]:
            parts.append(self._informational(exchange, early))
        printed.informational = len(exchange.informational)
        response = exchange.response
        if response is None:
            return
        if not printed.response:
            if _awaits_trailers(exchange, response):
                return
            parts.append(self._response(exchange))
            printed.response = True
            if response.trailers:
                parts[-1] = parts[-1][:-1] + self._trailers(response.trailers)
                printed.trailers = True
        elif response.trailers and not printed.trailers:
            head = f"{self._mark(exchange)}Response {_ident(exchange)} trailers\n"
            parts.append(head + self._trailers(response.trailers))
            printed.trailers = True
        printed.last_message = self._messages(exchange, printed.last_message, parts)
        for note in exchange.notes[printed.notes :]:
            parts.append(f"{self._mark(exchange)}Note {_ident(exchange)}: {one_line(note)}\n\n")
        printed.notes = len(exchange.notes)

    def _informational(self, exchange: Exchange, response: Response) -> str:
        status = f"{response.status} {response.reason}".rstrip()
        lines = [f"{self._mark(exchange)}Response {_ident(exchange)} {status}"]
        lines += self._header_lines(response.headers)
        return "\n".join(lines) + "\n\n"

    def _trailers(self, trailers: Sequence[tuple[str, str]]) -> str:
        return "\n".join(["Trailers:", *self._header_lines(list(trailers))]) + "\n\n"

    def _messages(
        self, exchange: Exchange, last: StreamMessage | None, parts: list[str]
    ) -> StreamMessage | None:
        """Print the messages after ``last``; the new last one printed."""
        messages = exchange.messages
        if not messages or messages[-1] is last:
            return last
        start = 0
        if last is not None:
            # Old messages may have been dropped: find the last printed one from the end.
            for index in range(len(messages) - 1, -1, -1):
                if messages[index] is last:
                    start = index + 1
                    break
        for message in messages[start:]:
            parts.append(self._message(exchange, message))
        return messages[-1]

    def _message(self, exchange: Exchange, message: StreamMessage) -> str:
        side = "client → server" if message.direction == "in" else "server → client"
        size = f"{message.length:,} bytes"
        about = f"{size}, {message.note}" if message.note else size
        if message.kind == "grpc":
            mark = self._mark(exchange)
            head = one_line(f"{mark}gRPC {_ident(exchange)} {side} message ({about})")
            # Schema-less, as protoc --decode_raw shows it; strings may hold any character.
            return f"{head}\n{terminal_safe(render_protobuf(message.data))}\n\n"
        head = one_line(
            f"{self._mark(exchange)}WebSocket {_ident(exchange)} {side} {message.kind} ({about})"
        )
        if message.kind == "close" or not message.data:
            return head + "\n\n"
        if message.kind == "binary":
            return f"{head}\n{_hex_block(message.data)}"
        try:
            return f"{head}\n{_text_block(terminal_safe(message.data.decode('utf-8')))}"
        except UnicodeDecodeError:
            return f"{head}\n{_hex_block(message.data)}"

    def _mark(self, exchange: Exchange) -> str:
        return f"## [{exchange.key[0]}] " if self.show_source else "## "

    def _request(self, exchange: Exchange, conn: Connection | None) -> str:
        ident = f"[{exchange.key[1]}:{exchange.index}]"
        where = ""
        if conn is not None:
            where = (
                f" from {address(conn.client, conn.client_port)}"
                f" to {address(conn.server, conn.server_port)}"
            )
        request = exchange.request
        if exchange.stream_id is not None:
            ident += f" stream {exchange.stream_id}"
        lines = [f"{self._mark(exchange)}Request {ident}{where}{self._flags(exchange)}"]
        if request.method:
            target = request.target if self.reveal else mask_url(request.target)
            lines.append(f"{request.method} {target} HTTP/{request.http_version}")
        lines = [one_line(line) for line in lines]
        lines += self._header_lines(request.headers)
        return "\n".join(lines) + "\n\n"

    def _response(self, exchange: Exchange) -> str:
        response = exchange.response
        assert response is not None
        ident = f"[{exchange.key[1]}:{exchange.index}]"
        status = f"{response.status} {response.reason}".rstrip()
        latency = exchange.latency_ms
        timing = f" ({latency:.1f} ms)" if latency is not None else ""
        lines = [one_line(f"{self._mark(exchange)}Response {ident} {status}{timing}"
                          f"{self._flags(exchange)}")]
        lines += self._header_lines(response.headers)
        return "\n".join(lines) + "\n\n"

    def _flags(self, exchange: Exchange) -> str:
        # A decoding error quotes the bytes it could not parse, secrets included.
        flags = _flags(exchange)
        return flags if self.reveal else mask_text(flags)

    def _header_lines(self, headers: list[tuple[str, str]]) -> list[str]:
        if not self.reveal:
            headers = masked_headers(headers)
        return [one_line(f"{name}: {value}") for name, value in headers]


@dataclass(slots=True)
class _Printed:
    """How much of one exchange ``dump --http`` has printed."""

    informational: int = 0
    request_trailers: bool = False
    response: bool = False
    trailers: bool = False
    notes: int = 0
    last_message: StreamMessage | None = None


def _ident(exchange: Exchange) -> str:
    return f"[{exchange.key[1]}:{exchange.index}]"


def _request_awaits_trailers(exchange: Exchange) -> bool:
    """The request announced trailers and is still arriving, unanswered: print it whole, once
    complete (or once its answer starts, which a streaming upload does not wait for)."""
    request = exchange.request
    if request.complete or exchange.response is not None or exchange.error:
        return False
    return not exchange.incomplete and request.header("trailer") is not None


def _awaits_trailers(exchange: Exchange, response: Response) -> bool:
    """The response announced trailers and is still arriving: print it whole, once complete."""
    if response.complete or exchange.error or exchange.incomplete:
        return False
    return response.header("trailer") is not None


def _flags(exchange: Exchange) -> str:
    flags = ""
    if exchange.incomplete:
        flags += " (incomplete)"
    if exchange.error:
        flags += f" (could not be decoded: {exchange.error})"
    return flags


class ExchangeWriter:
    """Feeds updates to a model store and writes the exchanges they complete, per batch."""

    def __init__(self, stream: BinaryIO, formatter: ExchangeTextFormatter, store: Store) -> None:
        self._stream = stream
        self.formatter = formatter
        self.store = store

    def write(self, updates: Sequence[Update]) -> None:
        change = self.store.apply(updates)
        text = self.formatter.format_change(change, self.store.get)
        if text:
            self._stream.write(text.encode("utf-8", "surrogateescape"))
            self._stream.flush()
