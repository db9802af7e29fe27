"""The filter language's operators: what each ``~x`` term tests, and the help that lists them.

Each operator builds a predicate over a connection and one of its exchanges (None when it has
none yet) from its argument, checking the argument once, when the filter is parsed: a bad regex,
status or address is a :class:`FilterError` at the argument's position, never a failure while
matching. :mod:`tui.model.filters` parses the expressions that combine them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from tui.model.content import decode_body
from tui.model.flows import Connection, Exchange, Message, StreamMessage
from tui.model.grpc import STATUS_NAMES, call_status
from tui.model.http1_framing import AMBIGUOUS_FRAMING
from tui.model.linear_regex import BODY_LIMIT, MESSAGES_LIMIT, LinearRegex, RegexError
from tui.model.routes import route_template

Predicate = Callable[[Connection, Exchange | None], bool]


class FilterError(ValueError):
    """An expression that cannot be parsed; ``position`` is the offending character's index."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at {position + 1})")
        self.message = message
        self.position = position


def _regex(
    text: str, position: int, *, ignore_case: bool | None = None, limit: int | None = None
) -> LinearRegex:
    smart = ignore_case or (ignore_case is None and text == text.lower())
    try:
        if limit is None:
            return LinearRegex(text, ignore_case=bool(smart))
        return LinearRegex(text, ignore_case=bool(smart), limit=limit)
    except RegexError as error:
        raise FilterError(f"invalid regex {text!r}: {error}", position) from None


def _method(arg: str, position: int) -> Predicate:
    pattern = _regex(arg, position, ignore_case=True)

    def test(_conn: Connection, ex: Exchange | None) -> bool:
        return ex is not None and pattern.fullmatch(ex.request.method)

    return test


def request_path(arg: str, position: int) -> Predicate:
    pattern = _regex(arg, position)

    def test(_conn: Connection, ex: Exchange | None) -> bool:
        return ex is not None and pattern.search(ex.request.target)

    return test


def _route(arg: str, position: int) -> Predicate:
    wanted = arg.strip()

    def test(_conn: Connection, ex: Exchange | None) -> bool:
        return ex is not None and route_template(ex.request.path or ex.request.target) == wanted

    return test


def _host(arg: str, position: int) -> Predicate:
    pattern = _regex(arg, position, ignore_case=True)

    def test(_conn: Connection, ex: Exchange | None) -> bool:
        return ex is not None and pattern.search(ex.request.host)

    return test


def _header_test(arg: str, position: int) -> Callable[[Message], bool]:
    name_text, colon, value_text = arg.partition(":")
    name = _regex(name_text.strip(), position, ignore_case=True)
    if not name_text.strip():
        raise FilterError('a header test needs a name, as in "x-user-id: alice"', position)
    value = _regex(value_text.strip(), position, ignore_case=False) if colon else None

    def test(message: Message) -> bool:
        for key, text in message.headers:
            if name.fullmatch(key) and (value is None or value.search(text)):
                return True
        return False

    return test


def _request_header(arg: str, position: int) -> Predicate:
    test = _header_test(arg, position)

    def predicate(_conn: Connection, ex: Exchange | None) -> bool:
        return ex is not None and test(ex.request)

    return predicate


def _response_header(arg: str, position: int) -> Predicate:
    test = _header_test(arg, position)

    def predicate(_conn: Connection, ex: Exchange | None) -> bool:
        return ex is not None and ex.response is not None and test(ex.response)

    return predicate


_CODE = re.compile(r"([1-5])([0-9]{2}|xx)", re.IGNORECASE)


def _code(arg: str, position: int) -> Predicate:
    found = _CODE.fullmatch(arg)
    if found is None:
        raise FilterError(f"~c wants a status code such as 404 or 5xx, not {arg!r}", position)
    if found.group(2).lower() == "xx":
        low = int(found.group(1)) * 100
        high = low + 99
    else:
        low = high = int(arg)

    def test(_conn: Connection, ex: Exchange | None) -> bool:
        status = None if ex is None else ex.status
        return status is not None and low <= status <= high

    return test


def _grpc_status(arg: str, position: int) -> Predicate:
    wanted = arg.strip().upper()
    if wanted.isdigit() and len(wanted) <= 2 and int(wanted) < len(STATUS_NAMES):
        wanted = STATUS_NAMES[int(wanted)]
    elif wanted not in STATUS_NAMES:
        known = ", ".join(STATUS_NAMES)
        raise FilterError(f"~gs wants a gRPC status code or name ({known}), not {arg!r}", position)

    def test(_conn: Connection, ex: Exchange | None) -> bool:
        status = None if ex is None else call_status(ex)
        return status is not None and status[1] == wanted

    return test


def _body(arg: str, position: int) -> Predicate:
    pattern = _regex(arg, position, limit=BODY_LIMIT)

    def test(_conn: Connection, ex: Exchange | None) -> bool:
        if ex is None:
            return False
        # Bodies are searched decoded: a gzip body for its text.
        if pattern.search(decode_body(ex.request).data):
            return True
        if ex.response is not None and pattern.search(decode_body(ex.response).data):
            return True
        return bool(ex.messages) and _in_messages(pattern, ex.messages)

    return test


def _in_messages(pattern: LinearRegex, messages: list[StreamMessage]) -> bool:
    """Whether a WebSocket or gRPC message matches, each searched on its own (a match never
    spans two), the first :data:`MESSAGES_LIMIT` bytes of them in all: a conversation of
    thousands of messages costs no more than a few bodies."""
    budget = MESSAGES_LIMIT
    for message in messages:
        data = message.data
        if len(data) > budget:
            data = data[:budget]
        if pattern.search(data):
            return True
        budget -= len(data)
        if budget <= 0:
            return False
    return False


def _endpoint_test(arg: str, position: int) -> Callable[[str, int], bool]:
    """``ADDR``, ``ADDR:PORT``, ``[V6]:PORT``, ``:PORT`` or a network ``10.0.0.0/8``."""
    text = arg.strip()
    port: int | None = None
    address = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise FilterError(f"missing ] in {text!r}", position)
        address, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise FilterError(f"expected :PORT after ] in {text!r}", position)
            port = _port(rest[1:], position)
    elif text.count(":") == 1:
        address, port_text = text.split(":")
        port = _port(port_text, position)
    network = None
    if address and address != "*":
        try:
            network = ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise FilterError(f"{address!r} is not an IP address or network", position) from None

    def test(host: str, host_port: int) -> bool:
        if port is not None and host_port != port:
            return False
        if network is None:
            return True
        try:
            return ipaddress.ip_address(host) in network
        except ValueError:
            return False

    return test


def _port(text: str, position: int) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise FilterError(f"{text!r} is not a port number", position)
    return int(text)


def _source(arg: str, position: int) -> Predicate:
    test = _endpoint_test(arg, position)
    return lambda conn, _ex: test(conn.client, conn.client_port)


def _destination(arg: str, position: int) -> Predicate:
    test = _endpoint_test(arg, position)
    return lambda conn, _ex: test(conn.server, conn.server_port)


def _pod(arg: str, position: int) -> Predicate:
    pattern = _regex(arg, position)
    return lambda conn, _ex: pattern.search(conn.source)


def _protocol(*protocols: str) -> Callable[[], Predicate]:
    def build() -> Predicate:
        return lambda conn, _ex: conn.protocol in protocols

    return build


def _failed() -> Predicate:
    return lambda _conn, ex: (
        ex is not None
        and (ex.error is not None or ex.incomplete or any(AMBIGUOUS_FRAMING in n for n in ex.notes))
    )


@dataclass(frozen=True)
class Operator:
    token: str
    argument: str | None
    description: str
    build_with: Callable[[str, int], Predicate] | None = None
    build: Callable[[], Predicate] | None = None


OPERATORS: list[Operator] = [
    Operator("~m", "METHOD", 'request method (a regex, whole word: ~m "GET|HEAD")', _method),
    Operator("~p", "REGEX", "request path and query", request_path),
    Operator("~route", "TEMPLATE", "route template, ids collapsed: ~route /api/users/{id}", _route),
    Operator("~d", "REGEX", "request Host header", _host),
    Operator(
        "~h",
        '"NAME: REGEX"',
        "a request header (NAME alone: the header is present)",
        _request_header,
    ),
    Operator("~hs", '"NAME: REGEX"', "a response header", _response_header),
    Operator("~c", "CODE", "response status: 404, or a class such as 5xx", _code),
    Operator("~gs", "CODE", "gRPC status: 5 or NOT_FOUND (from the call's trailers)", _grpc_status),
    Operator(
        "~b", "REGEX", "request or response body, WebSocket or gRPC messages (as kept)", _body
    ),
    Operator(
        "~err", None, "exchanges that could not be decoded fully (malformed, gaps)", build=_failed
    ),
    Operator(
        "~src", "ADDR[:PORT]", "client address: 10.1.2.3, 10.0.0.0/8, [fd00::1]:80, :5000", _source
    ),
    Operator("~dst", "ADDR[:PORT]", "server address, same forms as ~src", _destination),
    Operator("~pod", "REGEX", 'the source: NAMESPACE/POD, or "local"', _pod),
    Operator("~http", None, "HTTP connections", build=_protocol("http")),
    Operator("~h2", None, "HTTP/2 connections (gRPC included)", build=_protocol("h2", "grpc")),
    Operator("~grpc", None, "gRPC connections", build=_protocol("grpc")),
    Operator(
        "~ws",
        None,
        "WebSocket connections (after a 101 Switching Protocols)",
        build=_protocol("ws"),
    ),
    Operator("~tls", None, "TLS connections (not decoded)", build=_protocol("tls")),
    Operator("~tcp", None, "other TCP connections (raw bytes)", build=_protocol("tcp", "unknown")),
]
OPERATORS_BY_TOKEN = {op.token: op for op in OPERATORS}

COMBINATORS: list[tuple[str, str]] = [
    ("WORD", "a bare word or quoted string: a regex on the request path (like ~p)"),
    ("!EXPR", "not"),
    ("EXPR & EXPR", "and (a space between terms means and too)"),
    ("EXPR | EXPR", "or"),
    ("( EXPR )", "grouping"),
]

FILTER_HELP: list[tuple[str, str]] = [
    (op.token if op.argument is None else f"{op.token} {op.argument}", op.description)
    for op in OPERATORS
] + COMBINATORS
"""(syntax, meaning) for every operator and combinator, for help screens and docs/filters.md."""
