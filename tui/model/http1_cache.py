"""What the HTTP/1.x decoders of one store share: header lines and short words decoded once,
and the stand-in requests that prime h11 to parse a response.

Most header lines repeat from one request to the next (Host, User-Agent, Accept, a user id):
decoding each once and sharing the resulting tuple saves most of the memory 100,000 kept
exchanges take, and time too. Every table is bounded; the header table, when full, is emptied,
so that the lines that keep repeating come back and the one-offs (request ids) go.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import h11

from tui.model.http1_framing import H11_HEAD_LIMIT

_HEADER_LINES_MAX = 20_000
_HEADER_LINE_MAX = 256
"""Longer values (cookies, tokens) are rarely repeated verbatim: not worth keeping."""
_WORDS_MAX = 1000
_STAND_INS_MAX = 256
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}\Z")
_END = h11.EndOfMessage()


class Http1Cache:
    """Decoded header lines, words and stand-in requests, shared by many connections."""

    __slots__ = ("_header_lines", "_stand_ins", "_words")

    def __init__(self) -> None:
        self._header_lines: dict[tuple[bytes, bytes], tuple[str, str]] = {}
        self._words: dict[bytes, str] = {}
        self._stand_ins: dict[tuple[str, bool], h11.Request] = {}

    def headers(self, raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
        """Headers as sent: original case and order (h11's own view lowercases the names)."""
        lines = self._header_lines
        out = []
        for line in raw:
            decoded = lines.get(line)
            if decoded is None:
                name, value = line
                decoded = (name.decode("latin-1"), value.decode("utf-8", "replace"))
                if len(value) <= _HEADER_LINE_MAX:
                    if len(lines) >= _HEADER_LINES_MAX:
                        lines.clear()
                    lines[line] = decoded
            out.append(decoded)
        return out

    def word(self, raw: bytes) -> str:
        """Methods, versions, reason phrases: a handful of distinct values, shared."""
        words = self._words
        text = words.get(raw)
        if text is None:
            text = raw.decode("latin-1")
            if len(words) < _WORDS_MAX:
                words[raw] = text
        return text

    def request_body_parser(self, framing: bytes) -> h11.Connection:
        """A server-side h11 connection that has read a request head framed by ``framing``
        (a header line) and waits for its body: the head itself was read without h11."""
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=H11_HEAD_LIMIT)
        parser.receive_data(b"POST / HTTP/1.1\r\nHost: podtap\r\n" + framing + b"\r\n")
        parser.next_event()
        return parser

    def response_body_parser(self, method: str, framing: bytes) -> h11.Connection:
        """The same for a response to a ``method`` request."""
        parser = self.response_parser(method, upgrade=False)
        parser.receive_data(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n")
        parser.next_event()
        return parser

    def response_parser(self, method: str, upgrade: bool) -> h11.Connection:
        """A client-side h11 connection that has "sent" a stand-in for the request.

        Only what changes the response's framing is copied: the method (HEAD, CONNECT) and
        whether it proposed an upgrade (h11 rejects a 101 otherwise).
        """
        stand_in = self._stand_ins.get((method, upgrade))
        if stand_in is None:
            if not _TOKEN.match(method):
                method = "GET"
            headers = [("host", "podtap")]
            if upgrade:
                headers += [("connection", "upgrade"), ("upgrade", "unknown")]
            stand_in = h11.Request(method=method, target="/", headers=headers)
            if len(self._stand_ins) < _STAND_INS_MAX:
                self._stand_ins[(method, upgrade)] = stand_in
        parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=H11_HEAD_LIMIT)
        parser.send(stand_in)
        parser.send(_END)
        return parser
