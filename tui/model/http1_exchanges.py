"""The bookkeeping both sides of an HTTP/1.x connection share.

``ExchangeBook`` holds the exchanges in the order their requests came, and which of them still
wait for a response: HTTP/1.x pairs responses with requests in order and has no other way.
``MessageSide`` is what the request side and the response side have in common: a ``ByteReader``
of one direction and where that direction stands in ``Http1State``.
"""

from __future__ import annotations

import re
from collections import deque

from tui.model.byte_reader import ByteReader
from tui.model.decoder import ExchangeSink
from tui.model.flows import Connection, Exchange, Message, Request
from tui.model.http1_state import Event, Http1State, Mode

_MAX_ERRORS = 20
_MAX_NOTES = 5


class ExchangeBook:
    """The exchanges of one connection, and the requests still waiting for their response."""

    def __init__(self, connection: Connection, state: Http1State, body_cap: int) -> None:
        self.connection = connection
        self.body_cap = body_cap
        self._state = state
        self.awaiting: deque[Exchange] = deque()
        # Requests that proposed a protocol upgrade (their response may be a 101).
        self.upgrades: set[Exchange] = set()
        # The CONNECT or upgrade request whose answer says whether the client's bytes stay HTTP.
        self.switch_pending: Exchange | None = None
        self._next_index = 0

    def new_exchange(self, request: Request, started: float) -> Exchange:
        conn = self.connection
        exchange = Exchange(key=conn.key, index=self._next_index, request=request, started=started)
        self._next_index += 1
        conn.exchanges.append(exchange)
        self.awaiting.append(exchange)
        return exchange

    def answered(self, exchange: Exchange) -> None:
        if self.awaiting and self.awaiting[0] is exchange:
            self.awaiting.popleft()
        elif exchange in self.awaiting:
            self.awaiting.remove(exchange)
        self.upgrades.discard(exchange)
        if self.switch_pending is exchange:
            # The server declined the upgrade: the client's bytes are HTTP again.
            self.switch_pending = None
            self._state.client_event("switch_declined")

    def stop_waiting(self, note: str, sink: ExchangeSink) -> None:
        """The responses still waited for may be lost: pairing a later response with their
        requests would shift every pairing after it."""
        for exchange in self.awaiting:
            if exchange.finished is None:
                mark_incomplete(exchange, note, sink)
        self.awaiting.clear()
        self.upgrades.clear()
        if self.switch_pending is not None:
            # Whether the server declined is lost too: the client's side is scanned.
            self.switch_pending = None
            self._state.client_event("switch_declined")

    def note_junk(self, side: str, reason: str) -> None:
        errors = self.connection.errors
        if len(errors) < _MAX_ERRORS:
            errors.append(f"the {side} sent something that is not HTTP: {reason}")

    def add_body(self, reader: ByteReader, message: Message, data: bytes) -> None:
        reader.body_seen += len(data)
        message.body_length += len(data)
        if reader.store_body and len(message.body) < self.body_cap:
            message.body += data[: self.body_cap - len(message.body)]


class MessageSide:
    """One direction's bytes and its place in the connection's state."""

    start: re.Pattern[bytes]
    """Where a message of this side may start, when scanning for one."""
    is_client: bool

    def __init__(self, reader: ByteReader, state: Http1State, book: ExchangeBook) -> None:
        self.reader = reader
        self.state = state
        self.book = book

    @property
    def mode(self) -> Mode:
        return self.state.client if self.is_client else self.state.server

    def event(self, event: Event) -> None:
        if self.is_client:
            self.state.client_event(event)
        else:
            self.state.server_event(event)

    def resync(self) -> bool:
        """Scan for the next message start; True once found."""
        if not self.reader.resync(self.start):
            return False
        self.event("start_found")
        return True


def mark_incomplete(exchange: Exchange, note: str, sink: ExchangeSink) -> None:
    """Bytes of ``exchange`` were lost; ``note`` says how (a few notes say it: a flood of gaps
    on one exchange would not say more)."""
    exchange.incomplete = True
    if note not in exchange.notes and len(exchange.notes) < _MAX_NOTES:
        exchange.notes.append(note)
    sink.exchange_changed(exchange)
