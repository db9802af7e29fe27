"""``podtap dump --http``'s text: decoded exchanges, one block per request and per response.

:class:`ExchangeTextFormatter` is pure (store changes in, text out) and remembers how much of
each exchange it has printed; :class:`ExchangeWriter` feeds a store and puts the text on a
stream. Secrets are masked unless ``reveal`` (see :mod:`tui.model.secrets`). The raw text of
``podtap dump`` without ``--http`` is :mod:`tui.output.text`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from tui.model.flows import Connection, ConnectionKey, Exchange, Response, StreamMessage
from tui.model.protobuf_raw import render as render_protobuf
from tui.model.secrets import mask_message_text, mask_text, mask_url, masked_headers
from tui.model.store import Store, StoreChange
from tui.model.terminal_text import one_line, terminal_safe
from tui.model.updates import Update
from tui.output.text import address, hex_block, text_block


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
        """Print secrets (headers, URL parameters, messages' JSON keys, ...) as sent."""
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
            strings = None if self.reveal else mask_message_text
            fields = render_protobuf(message.data, shown_string=strings)
            return f"{head}\n{terminal_safe(fields)}\n\n"
        head = one_line(
            f"{self._mark(exchange)}WebSocket {_ident(exchange)} {side} {message.kind} ({about})"
        )
        if message.kind == "close" or not message.data:
            return head + "\n\n"
        if message.kind == "binary":
            return f"{head}\n{hex_block(message.data)}"
        try:
            text = message.data.decode("utf-8")
        except UnicodeDecodeError:
            return f"{head}\n{hex_block(message.data)}"
        shown = text if self.reveal else mask_message_text(text)
        return f"{head}\n{text_block(terminal_safe(shown))}"

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
        lines = [
            one_line(
                f"{self._mark(exchange)}Response {ident} {status}{timing}{self._flags(exchange)}"
            )
        ]
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
