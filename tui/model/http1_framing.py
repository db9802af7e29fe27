"""How HTTP/1.x messages are framed, as far as a tap needs to know: where one may start, how
long its body is, whether it proposes a protocol switch, and the path its target names."""

from __future__ import annotations

import re

from tui.model.flows import Exchange, Message, Request, Response

# Where a message may start when resynchronising: any method token at the start of a line, a
# well-known method anywhere (a body need not end with a newline), or a status line anywhere.
# Lines are bounded so that an unfinished one never needs more than 8 KiB kept.
REQUEST_START = re.compile(
    rb"(?:(?<=\n)[A-Z][A-Z0-9_-]{0,19}|(?:GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS|CONNECT|TRACE))"
    rb" [^\x00-\x20\x7f]{1,8000} HTTP/1\.[01]\r?\n"
)
STATUS_START = re.compile(rb"HTTP/1\.[01] [1-5][0-9]{2}(?: [^\r\n]{0,1000})?\r?\n")
METHOD_PREFIX = re.compile(rb"[A-Z][A-Z0-9_-]{0,19}(?: |\Z)")
"""What a request's first bytes look like: a method token, then a space (or not yet)."""


def proposes_upgrade(request: Request) -> bool:
    tokens = ",".join(request.header_values("connection")).lower()
    return "upgrade" in tokens and request.header("upgrade") is not None


def declared_length(exchange: Exchange | None, message: Message) -> int | None:
    """The body length the message's framing promises, if it promises one."""
    if (
        isinstance(message, Response)
        and exchange is not None
        and (exchange.request.method == "HEAD" or message.status in (204, 304))
    ):
        return 0
    return content_length(message)


def content_length(message: Message) -> int | None:
    if is_chunked(message):
        return None
    value = message.header("content-length")
    if value is None:
        return None
    try:
        return int(value.split(",")[0].strip())
    except ValueError:
        return None


def is_chunked(message: Message) -> bool:
    encoding = message.header("transfer-encoding")
    return encoding is not None and "chunked" in encoding.lower()


def path_of(target: str, method: bytes) -> str:
    if method == b"CONNECT":
        return target
    if "://" in target:
        after_scheme = target.split("://", 1)[1]
        slash = after_scheme.find("/")
        target = after_scheme[slash:] if slash >= 0 else "/"
    return target.split("?", 1)[0].split("#", 1)[0]
