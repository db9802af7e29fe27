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

from collections.abc import Sequence
from typing import BinaryIO

from agent.events import (
    AnyEvent,
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    EventsLost,
    Gap,
)
from tui.model.terminal_text import terminal_safe
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
        return text_block(data.decode("utf-8"))
    except UnicodeDecodeError:
        return hex_block(data)


def text_block(text: str) -> str:
    text = "Data: " + text
    if text.endswith("\n\n") or text.endswith("\n\r\n"):
        return text
    return text + "\n" if text.endswith("\n") else text + "\n\n"


def hex_block(data: bytes) -> str:
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
        data = event.data
        if self._partial:  # rare: only while a character waits for the rest of its bytes
            data = self._partial.pop((source, event.conn, event.direction), b"") + data
        try:
            # Most chunks are whole text: decoded once, with no tail to look for.
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            split = _split_incomplete_tail(data)
            if split is None:
                return hex_block(data)
            text, tail = split
            if tail:
                self._partial[(source, event.conn, event.direction)] = tail
        return text_block(terminal_safe(text) if self.escape else text)

    def format_updates(self, updates: Sequence[Update]) -> str:
        """The text for the events among ``updates`` (statuses and notes print nothing)."""
        fmt = self.format
        return "".join([fmt(u.source, u.event) for u in updates if isinstance(u, AgentEvent)])


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
