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
REQUEST_LINE = re.compile(rb"[A-Z][A-Z0-9_-]{0,19} [^\x00-\x20\x7f]{1,8000} HTTP/1\.[01]\r?\n")
"""A request line, from its first byte."""
STATUS_START = re.compile(rb"HTTP/1\.[01] [1-5][0-9]{2}(?: [^\r\n]{0,1000})?\r?\n")
METHOD_PREFIX = re.compile(rb"[A-Z][A-Z0-9_-]{0,19}(?: |\Z)")
"""What a request's first bytes look like: a method token, then a space (or not yet)."""


MAX_HEAD = 64 * 1024
"""The largest head (start line, header fields and the blank line that ends them) decoded; a
larger one is "head too large" (servers refuse far smaller ones: nginx 8 KiB a line, Node
16 KiB a head)."""
H11_HEAD_LIMIT = MAX_HEAD - 1
"""h11's ``max_incomplete_event_size``: h11 refuses a head once it holds more bytes of it than
this and they do not complete it. Handed at most ``MAX_HEAD`` bytes of a head at a time
(``ByteReader.feed_more``), it refuses exactly the heads over ``MAX_HEAD``, however they arrive;
given a limit of ``MAX_HEAD`` itself, it would wait for more and pass a larger head whose end
came in the same piece as the byte past the limit."""
MAX_INFORMATIONAL = 5
"""1xx responses kept per exchange; a server sending thousands gains nothing more."""
AMBIGUOUS_FRAMING = "ambiguous framing"
"""How notes and errors about a body length two ways begin (``~err`` finds them)."""


def framing_ambiguity(headers: list[tuple[str, str]]) -> str | None:
    """Why a message's body length can be read two ways, when it can; None otherwise.

    Both ``Content-Length`` and ``Transfer-Encoding``: HTTP/1.1 says the transfer coding
    decides (RFC 9112, 6.3), which is how it is decoded, but a server or proxy that reads the
    length instead sees other messages (request smuggling)."""
    length = coding = False
    for name, _ in headers:
        size = len(name)
        if size == 14 and name.lower() == "content-length":
            length = True
        elif size == 17 and name.lower() == "transfer-encoding":
            coding = True
    if length and coding:
        return (
            f"{AMBIGUOUS_FRAMING}: both Content-Length and Transfer-Encoding; decoded by "
            "Transfer-Encoding, as HTTP/1.1 says (RFC 9112, 6.3)"
        )
    return None


def failure_reason(h11_reason: str) -> str:
    """h11's words for a message it refused, in the words of what a person sees."""
    if h11_reason == "Receive buffer too long":
        return f"head too large (over {MAX_HEAD // 1024} KiB)"
    if h11_reason == "conflicting Content-Length headers":
        return (
            f"{AMBIGUOUS_FRAMING}: two different Content-Lengths; HTTP/1.1 makes such a "
            "message invalid (RFC 9112, 6.3)"
        )
    return h11_reason


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
