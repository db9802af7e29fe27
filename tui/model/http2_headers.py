"""HTTP/2 header blocks of one direction, decoded into the flow model's requests and responses.

A direction's blocks share one HPACK dynamic table. Seen from the connection's start, hpack's
own decoder follows it exactly; joined late, after a loss or after a block that failed, the
table is partly unknown and ``hpack_partial`` takes over: fields that refer to entries never
seen are counted as unknown, never guessed.
"""

from __future__ import annotations

import hpack

from tui.model.flows import Request, Response
from tui.model.hpack_partial import MalformedHeaderBlock, PartialDecoder

JOINED_MID_STREAM = "headers incomplete (joined mid-stream)"
AFTER_A_LOSS = "headers incomplete (after a loss)"

MAX_HEADER_BLOCK = 256 * 1024
_MAX_TABLE_SIZE = 64 * 1024
"""What a peer may let the other's encoder use; a watcher believes SETTINGS up to this."""
_HEADER_CACHE_MAX = 20_000

Headers = list[tuple[str, str]]


class HeaderBlockDecoder:
    """Decodes the header blocks of one direction, in order."""

    __slots__ = ("_exact", "_partial", "why_partial")

    def __init__(self, joined_late: bool) -> None:
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
            cache = _HEADER_CACHE
            return [cache.get(field) or _header(*field) for field in raw], 0, ""
        partial = self._partial
        assert partial is not None
        try:
            fields = partial.decode(block)
        except MalformedHeaderBlock as exc:
            self._partial = PartialDecoder()
            return [], 0, f"malformed header block: {exc}"
        headers = [_header(n, v) for n, v in fields if n is not None and v is not None]
        return headers, len(fields) - len(headers), ""


_HEADER_CACHE: dict[tuple[bytes, bytes], tuple[str, str]] = {}


def _header(name: bytes, value: bytes) -> tuple[str, str]:
    """Decoded once and shared: most fields repeat from one request to the next."""
    key = (name, value)
    decoded = _HEADER_CACHE.get(key)
    if decoded is None:
        decoded = (name.decode("latin-1"), value.decode("utf-8", "replace"))
        if len(value) <= 256:
            if len(_HEADER_CACHE) >= _HEADER_CACHE_MAX:
                _HEADER_CACHE.clear()
            _HEADER_CACHE[key] = decoded
    return decoded


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
