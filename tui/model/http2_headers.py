"""HTTP/2 header blocks of one direction, decoded into the flow model's requests and responses.

A direction's blocks share one HPACK dynamic table. Seen from the connection's start, hpack's
own decoder follows it exactly; joined late, after a loss or after a block that failed, the
table is partly unknown and ``hpack_partial`` takes over: fields that refer to entries never
seen are counted as unknown, never guessed.

Decoded fields are shared through an :class:`Http2HeaderCache` that the store owns and hands to
every HTTP/2 decoder it makes: the same fields repeat across streams and connections, and a
cache per store (not per process) goes when its store goes.
"""

from __future__ import annotations

from collections.abc import Iterable

import hpack

from tui.model.flows import Request, Response
from tui.model.hpack_partial import MalformedHeaderBlock, PartialDecoder

JOINED_MID_STREAM = "headers incomplete (joined mid-stream)"
AFTER_A_LOSS = "headers incomplete (after a loss)"

MAX_HEADER_BLOCK = 256 * 1024
_MAX_TABLE_SIZE = 64 * 1024
"""What a peer may let the other's encoder use; a watcher believes SETTINGS up to this."""
_HEADER_CACHE_MAX = 20_000
_HEADER_VALUE_MAX = 256
"""Longer values (cookies, tokens) are rarely repeated verbatim: not worth keeping."""

Headers = list[tuple[str, str]]


class Http2HeaderCache:
    """Header fields decoded once and shared by the HTTP/2 decoders of one store: most fields
    repeat from one request to the next. Bounded: when full it is emptied, so that the fields
    that keep repeating come back and the one-offs (request ids) go."""

    __slots__ = ("_fields",)

    def __init__(self) -> None:
        self._fields: dict[tuple[bytes, bytes], tuple[str, str]] = {}

    def headers(self, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        fields = self._fields
        return [fields.get(field) or self.header(*field) for field in raw]

    def header(self, name: bytes, value: bytes) -> tuple[str, str]:
        key = (name, value)
        fields = self._fields
        decoded = fields.get(key)
        if decoded is None:
            decoded = (name.decode("latin-1"), value.decode("utf-8", "replace"))
            if len(value) <= _HEADER_VALUE_MAX:
                if len(fields) >= _HEADER_CACHE_MAX:
                    fields.clear()
                fields[key] = decoded
        return decoded


class HeaderBlockDecoder:
    """Decodes the header blocks of one direction, in order, sharing decoded fields through
    ``cache``."""

    __slots__ = ("_cache", "_exact", "_partial", "why_partial")

    def __init__(self, joined_late: bool, cache: Http2HeaderCache) -> None:
        self._cache = cache
        self._exact: hpack.Decoder | None = None
        self._partial: PartialDecoder | None = None
        self.why_partial = ""
        """Why fields may be unknown (a note for the exchanges); empty while exact."""
        if joined_late:
            self.lose_table(JOINED_MID_STREAM)
        else:
            self._exact = hpack.Decoder()
            self._exact.max_header_list_size = MAX_HEADER_BLOCK

    def lose_table(self, why: str) -> None:
        """The dynamic table is no longer fully known (a loss, a block that was not read)."""
        self._exact = None
        self._partial = PartialDecoder()
        self.why_partial = why

    def allow_table_size(self, size: int) -> None:
        """The peer's SETTINGS_HEADER_TABLE_SIZE: how large this side's encoder may go."""
        exact = self._exact
        if exact is not None:
            exact.max_allowed_table_size = max(
                exact.max_allowed_table_size, min(size, _MAX_TABLE_SIZE)
            )

    def decode(self, block: bytes) -> tuple[Headers, int, str]:
        """The block's headers, how many fields were unknown, and an error ('' if none)."""
        exact = self._exact
        if exact is not None:
            try:
                raw = exact.decode(block, raw=True)
            except hpack.HPACKError as exc:
                self.lose_table(AFTER_A_LOSS)
                return [], 0, f"malformed header block: {exc}"
            return self._cache.headers(raw), 0, ""
        partial = self._partial
        assert partial is not None
        try:
            fields = partial.decode(block)
        except MalformedHeaderBlock as exc:
            self._partial = PartialDecoder()
            return [], 0, f"malformed header block: {exc}"
        header = self._cache.header
        headers = [header(n, v) for n, v in fields if n is not None and v is not None]
        return headers, len(fields) - len(headers), ""


def request_from(headers: Headers) -> Request:
    """Pseudo-headers become the request line's parts; the rest stay headers, in order."""
    request = Request(http_version="2")
    regular = []
    for name, value in headers:
        if not name.startswith(":"):
            regular.append((name, value))
        elif name == ":method":
            request.method = value
        elif name == ":path":
            request.target = value
            request.path = value.split("?", 1)[0]
        elif name == ":authority":
            request.host = value
    request.headers = regular
    if not request.host:
        request.host = request.header("host") or ""
    return request


def response_from(headers: Headers) -> Response:
    response = Response(http_version="2")
    regular = []
    for name, value in headers:
        if name == ":status":
            response.status = int(value) if value.isdigit() and len(value) == 3 else 0
        elif not name.startswith(":"):
            regular.append((name, value))
    response.headers = regular
    return response
