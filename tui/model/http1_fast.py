"""The common HTTP/1.x message, read without h11.

Most messages on a busy service are plain: a start line, header lines each ended by CRLF, a
blank line, and a body framed by one ``Content-Length`` (or by plain chunks, or none at all),
all of it already buffered. Reading those with a few C-level searches costs a fraction of
what a general parser does; everything else is declined (``None``) and h11 reads it, so that
what h11 would refuse (bare LF, obs-fold, spaces before a colon, conflicting lengths, unknown
transfer codings) still gets h11's verdict and podtap's bounds, and what both can read is read
the same (``tests/unit/test_http1_fast.py`` holds the two side by side).

Declined as well, because h11's handling of them carries state this reader does not keep:
informational and ``101`` responses, anything to do with ``CONNECT``, a response to a proposed
upgrade, a response framed by the close of the connection, chunk extensions and trailers,
``Content-Length`` with ``Transfer-Encoding``, HTTP versions other than 1.0 and 1.1, and heads
over ``MAX_SIMPLE_HEAD`` (the piece h11 is first handed, so a head read here is one h11 would
read whole, far below its ``MAX_HEAD`` refusal).
"""

from __future__ import annotations

import re
from typing import NamedTuple, Protocol

MAX_SIMPLE_HEAD = 8192

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
# The same characters h11 allows, with a CRLF where h11 also takes a bare LF (declined here).
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/(1\.[01])\r\n")
_STATUS_LINE = re.compile(rb"HTTP/(1\.[01]) ([0-9]{3})(?: ([^\x00\n\r\x0b\x0c]*))?\r\n")
# One whole header line per match, from the start of a line: a line that does not match
# leaves the count of matches short of the count of lines.
_HEADER_LINE = re.compile(
    rb"^(" + _TOKEN + rb"):[ \t]*((?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?)[ \t]*\r\n", re.MULTILINE
)
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,20})\r\n")
_MAX_LENGTH_DIGITS = 20
"""h11's bound on a Content-Length's digits."""

RawHeaders = list[tuple[bytes, bytes]]


class RequestLine(Protocol):
    """A request's first line, as h11's ``Request`` and ``SimpleRequest`` both give it."""

    @property
    def method(self) -> bytes: ...
    @property
    def target(self) -> bytes: ...
    @property
    def http_version(self) -> bytes: ...


class StatusLine(Protocol):
    """A response's first line, as h11's responses and ``SimpleResponse`` both give it."""

    @property
    def status_code(self) -> int: ...
    @property
    def reason(self) -> bytes: ...
    @property
    def http_version(self) -> bytes: ...


class SimpleRequest(NamedTuple):
    method: bytes
    target: bytes
    http_version: bytes
    headers: RawHeaders
    body: bytes | None
    """None when the body is not all buffered yet (h11 reads it, told only ``framing``)."""
    end: int
    """Index just past the message in the buffer read (past the head when ``body`` is None)."""
    framing: bytes
    """The header line that frames the body as h11 reads it, if one does."""


class SimpleResponse(NamedTuple):
    status_code: int
    reason: bytes
    http_version: bytes
    headers: RawHeaders
    body: bytes | None
    end: int
    framing: bytes


class _Framing(NamedTuple):
    length: int | None
    """The Content-Length, if one was sent."""
    chunked: bool
    hosts: int

    @property
    def line(self) -> bytes:
        if self.chunked:
            return b"Transfer-Encoding: chunked\r\n"
        if self.length is not None:
            return b"Content-Length: %d\r\n" % self.length
        return b""


def read_request(buf: bytearray, pos: int) -> SimpleRequest | None:
    """The plain request that starts at ``buf[pos]``, whole; None to leave it to h11."""
    blank = buf.find(b"\r\n\r\n", pos, pos + MAX_SIMPLE_HEAD)
    if blank < 0:
        return None
    line = _REQUEST_LINE.match(buf, pos, blank + 2)
    if line is None:
        return None
    method, target, version = line.groups()
    if method == b"CONNECT":
        return None
    headers = _header_lines(buf, line.end(), blank + 2)
    if headers is None:
        return None
    framing = _framing(headers)
    if framing is None or framing.hosts > 1 or (framing.hosts == 0 and version == b"1.1"):
        return None
    body, end = _body(buf, blank + 4, framing, default=0)
    return SimpleRequest(method, target, version, headers, body, end, framing.line)


def read_response(buf: bytearray, pos: int, method: str) -> SimpleResponse | None:
    """The plain final response to a ``method`` request that starts at ``buf[pos]``, whole;
    None to leave it to h11."""
    if method == "CONNECT":
        return None
    blank = buf.find(b"\r\n\r\n", pos, pos + MAX_SIMPLE_HEAD)
    if blank < 0:
        return None
    line = _STATUS_LINE.match(buf, pos, blank + 2)
    if line is None:
        return None
    version, code, reason = line.groups()
    status = int(code)
    if status < 200:
        return None
    headers = _header_lines(buf, line.end(), blank + 2)
    if headers is None:
        return None
    framing = _framing(headers)
    if framing is None:
        return None
    body: bytes | None
    if method == "HEAD" or status == 204 or status == 304:
        body, end = b"", blank + 4
    else:
        # No framing header: the body runs to the close, which only h11 waits for.
        body, end = _body(buf, blank + 4, framing, default=None)
    return SimpleResponse(status, reason or b"", version, headers, body, end, framing.line)


def _header_lines(buf: bytearray, start: int, end: int) -> RawHeaders | None:
    headers: RawHeaders = _HEADER_LINE.findall(buf, start, end)
    if len(headers) != buf.count(b"\n", start, end):
        return None
    return headers


def _framing(headers: RawHeaders) -> _Framing | None:
    """What the framing headers say, or None when h11 should judge them (a second
    Content-Length, even an equal one, which h11 drops; a list of lengths; a coding other
    than chunked; both a length and a coding)."""
    length: int | None = None
    chunked = False
    hosts = 0
    for index, (name, value) in enumerate(headers):
        size = len(name)
        if size == 4:
            if name.lower() == b"host":
                hosts += 1
        elif size == 14:
            if name.lower() == b"content-length":
                if length is not None or not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
                    return None
                length = int(value)
        elif size == 17 and name.lower() == b"transfer-encoding":
            coding = value.lower()
            if chunked or coding != b"chunked":
                return None
            chunked = True
            if coding != value:
                # h11 hands the coding on lowercased.
                headers[index] = (name, coding)
    if chunked and length is not None:
        return None
    return _Framing(length, chunked, hosts)


def _body(
    buf: bytearray, start: int, framing: _Framing, default: int | None
) -> tuple[bytes | None, int]:
    """The body starting at ``buf[start]`` and the index past it, if all of it is there and
    plain; else None and ``start``, for h11 to read (and judge) as it comes."""
    if framing.chunked:
        return _chunked_body(buf, start) or (None, start)
    length = framing.length if framing.length is not None else default
    if length is None:
        return None, start
    end = start + length
    if end > len(buf):
        return None, start
    return (bytes(buf[start:end]) if length else b""), end


def _chunked_body(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Plain chunks (no extensions) and an empty trailer, all buffered."""
    parts: list[bytes] = []
    size_of = _CHUNK_SIZE.match
    total = len(buf)
    while True:
        line = size_of(buf, pos)
        if line is None:
            return None
        size = int(line.group(1), 16)
        start = line.end()
        if size == 0:
            if buf[start : start + 2] != b"\r\n":
                return None
            return b"".join(parts), start + 2
        end = start + size
        if end + 2 > total or buf[end : end + 2] != b"\r\n":
            return None
        parts.append(bytes(buf[start:end]))
        pos = end + 2
