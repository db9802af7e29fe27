"""Filter expressions: parsing, errors with positions, and matching real decoded exchanges."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.h2_streams import recording
from tests.unit.h2_streams import replay as h2_replay
from tests.unit.http_streams import BY_NAME, Stream, c2s, replay, s2c
from tests.unit.ws_streams import chat
from tui.model.filters import (
    FILTER_HELP,
    FilterError,
    header_value_expression,
    parse_filter,
)
from tui.model.flows import Connection, Exchange, Request, Response, StreamMessage
from tui.model.linear_regex import MESSAGES_LIMIT

DOCS = Path(__file__).resolve().parents[2] / "docs" / "filters.md"
WS_HANDSHAKE = (
    b"GET /room HTTP/1.1\r\nHost: chat.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def exchange(
    method: str = "GET",
    target: str = "/api/items",
    headers: list[tuple[str, str]] | None = None,
    status: int | None = 200,
    response_headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    response_body: bytes = b"",
) -> Exchange:
    request = Request(
        method=method,
        target=target,
        path=target.split("?")[0],
        headers=headers or [("Host", "shop.example")],
        host="shop.example",
        body=body,
    )
    response = None
    if status is not None:
        response = Response(status=status, headers=response_headers or [], body=response_body)
    return Exchange(key=("default/web-0", 1), index=0, request=request, response=response)


def connection(
    protocol: str = "http",
    client: str = "10.1.2.3",
    client_port: int = 40000,
    server: str = "10.9.0.5",
    server_port: int = 8080,
    source: str = "default/web-0",
) -> Connection:
    conn = Connection(
        key=(source, 1),
        source=source,
        conn=1,
        client=client,
        client_port=client_port,
        server=server,
        server_port=server_port,
        opened=0.0,
    )
    conn.protocol = protocol  # type: ignore[assignment]
    return conn


def matches(expression: str, ex: Exchange | None = None, conn: Connection | None = None) -> bool:
    return parse_filter(expression).evaluate(conn or connection(), ex)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("~m GET", True),
        ("~m get", True),
        ("~m POST", False),
        ('~m "GET|HEAD"', True),
        ("~m GE", False),  # a method regex matches the whole method
        ("~p ^/api", True),
        ("~p items$", True),
        ("~p /API", False),  # upper case in the regex: case-sensitive
        ("~p /api/ITEMS", False),
        ("api", True),
        ("orders", False),
        ('"/api/items"', True),
        ("~c 200", True),
        ("~c 2xx", True),
        ("~c 2XX", True),
        ("~c 5xx", False),
        ("~d shop", True),
        ("~src 10.1.2.3", True),
        ("~src 10.0.0.0/8", True),
        ("~src 10.1.2.3:40000", True),
        ("~src 10.1.2.3:40001", False),
        ("~src :40000", True),
        ("~dst 10.9.0.5:8080", True),
        ("~dst 10.9.0.6", False),
        ("~pod web", True),
        ("~pod ^other/", False),
        ("~http", True),
        ("~tcp", False),
        ("~tls", False),
        ("!~tcp", True),
        ("~m GET & ~c 200", True),
        ("~m GET ~c 404", False),  # a space is "and"
        ("~m POST | ~c 200", True),
        ("!(~m POST | ~c 404)", True),
        ("!~m GET | ~c 200", True),  # ! binds tighter than |
        ("!(~m GET | ~c 404)", False),
        ("~err", False),
    ],
)
def test_terms_and_combinations(expression: str, expected: bool) -> None:
    assert matches(expression, exchange()) is expected


def test_headers_names_ignore_case_and_values_are_regexes() -> None:
    ex = exchange(
        headers=[("Host", "shop.example"), ("X-User-Id", "alice"), ("User-Agent", "curl/8.5")],
        response_headers=[("Content-Type", "application/json")],
    )
    assert matches('~h "x-user-id: alice"', ex)
    assert matches('~h "X-USER-ID: ^alice$"', ex)
    assert not matches('~h "x-user-id: ^Alice$"', ex)  # values are case-sensitive
    assert matches("~h x-user-id", ex)  # presence
    assert not matches("~h x-tenant", ex)
    assert matches('~h "user-agent: curl/\\d"', ex)
    assert matches('~hs "content-type: json"', ex)
    assert not matches('~h "content-type: json"', ex)  # that is a response header


def test_body_searches_both_directions() -> None:
    ex = exchange(body=b'{"user": "alice"}', response_body=b'{"error": "Out of stock"}')
    assert matches("~b alice", ex)
    assert matches('~b "out of stock"', ex)
    assert not matches('~b "Out of Stock"', ex)
    assert not matches("~b bob", ex)


def websocket_chat() -> Connection:
    """The ``websockets`` library's chat, compressed, after its handshake, decoded by podtap."""
    conversation = chat(deflate=True)
    accept = "HTTP/1.1 101 Switching Protocols\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in conversation.response_headers
    )
    steps = [c2s(WS_HANDSHAKE), s2c(accept.encode() + b"\r\n")]
    steps += [c2s(data) if side == "in" else s2c(data) for side, data in conversation.chunks]
    conn, _ = replay(Stream("ws", tuple(steps)))
    return conn


def test_ws_selects_websocket_connections_and_b_searches_their_messages() -> None:
    ws = websocket_chat()
    (upgrade,) = ws.exchanges
    plain = exchange()
    assert parse_filter("~ws").evaluate(ws, upgrade)
    assert not parse_filter("~ws").evaluate(connection(), plain)
    assert parse_filter("!~ws").evaluate(connection(), plain)
    # Message payloads travel deflated: ~b searches them as sent by the peer, inflated.
    assert parse_filter("~b welcome").evaluate(ws, upgrade)
    assert parse_filter('~b "fragmented message"').evaluate(ws, upgrade)
    assert parse_filter("~b ünïcödé").evaluate(ws, upgrade)
    assert not parse_filter("~b goodbye").evaluate(ws, upgrade)
    # One message at a time: a match never spans two messages.
    assert not parse_filter('~b "room.*again"').evaluate(ws, upgrade)


def test_b_searches_grpc_messages_inflated_from_their_grpc_encoding() -> None:
    conn, _, _ = h2_replay(recording("grpc-gzip"))
    (call,) = conn.exchanges
    assert b"gzip gzip" not in call.request.body  # the body holds them compressed
    assert parse_filter('~b "gzip gzip"').evaluate(conn, call)
    assert parse_filter("~b count").evaluate(conn, call)
    assert not parse_filter("~b zipper").evaluate(conn, call)


def test_b_looks_at_a_bounded_part_of_a_long_conversation() -> None:
    ws = websocket_chat()
    (upgrade,) = ws.exchanges
    filler = StreamMessage("in", 0.0, "binary", bytes(MESSAGES_LIMIT), MESSAGES_LIMIT)
    late = StreamMessage("out", 1.0, "text", b"needle", 6)
    upgrade.messages[:] = [filler, late]
    assert not parse_filter("~b needle").evaluate(ws, upgrade)
    upgrade.messages[:] = [late, filler]
    assert parse_filter("~b needle").evaluate(ws, upgrade)


def test_ipv6_endpoints() -> None:
    conn = connection(client="fd00:7a9::2", client_port=5000)
    assert matches("~src [fd00:7a9::2]:5000", None, conn)
    assert matches("~src fd00:7a9::/64", None, conn)
    assert not matches("~src [fd00:7a9::2]:5001", None, conn)


def test_exchange_terms_are_false_without_an_exchange_and_connection_terms_hold() -> None:
    conn = connection(protocol="tcp")
    assert not matches("~m GET", None, conn)
    assert matches("!~m GET", None, conn)
    assert matches("~tcp & ~dst :8080", None, conn)


def test_matches_connection_means_one_of_its_exchanges() -> None:
    conn, _ = replay(BY_NAME["simple-get-keepalive"])
    assert parse_filter("~c 404").matches_connection(conn)
    assert not parse_filter("~c 500").matches_connection(conn)
    ok = conn.exchanges[0]
    assert parse_filter('~h "x-user-id: ^alice$"').matches_exchange(ok, conn)


@pytest.mark.parametrize(
    ("expression", "message", "position"),
    [
        ("", "empty filter", 0),
        ("   ", "empty filter", 0),
        ("~x foo", "unknown operator ~x", 0),
        ("~m", "~m needs METHOD", 2),
        ("~m GET &", "an expression is missing at the end", 8),
        ("(~m GET", "missing )", 0),
        ("~m GET)", "unexpected ')'", 6),
        ('~h "x-user', "unclosed quote", 3),
        ("~c 6xx", "~c wants a status code", 3),
        ("~c abc", "~c wants a status code", 3),
        ("~p [unclosed", "invalid regex", 3),
        ("~src 10.1.2", "is not an IP address", 5),
        ("~src 10.1.2.3:99999", "is not a port number", 5),
        ("~m GET | | ~c 200", "unexpected '|'", 9),
        ("~m (", "~m needs METHOD", 3),
        ("~p (a|b)c", "~p needs REGEX; quote one that starts with '(': ~p \"(...\"", 3),
        ("~m !GET", "quote one that starts with '!'", 3),
        ('~h ": x"', "needs a name", 3),
    ],
)
def test_invalid_expressions_say_what_and_where(
    expression: str, message: str, position: int
) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(expression)
    assert message in caught.value.message
    assert caught.value.position == position


@pytest.mark.parametrize(
    "value", ["alice", "Alice Smith", 'quo"te', "back\\slash", "a.b*c+(d)?[e]{f}|^$", "é 日本"]
)
def test_header_value_expression_selects_exactly_that_value(value: str) -> None:
    text = header_value_expression("X-User-Id", value)
    selected = parse_filter(text)
    assert selected.evaluate(connection(), exchange(headers=[("x-user-id", value)]))
    for other in (value + "x", "x" + value, value.swapcase() if value.swapcase() != value else "z"):
        assert not selected.evaluate(connection(), exchange(headers=[("x-user-id", other)]))


def test_the_parsed_text_is_kept() -> None:
    assert parse_filter("~m GET").text == "~m GET"


def _help_table() -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| Expression | Matches |", "| --- | --- |"]
    rows += [f"| `{cell(syntax)}` | {cell(meaning)} |" for syntax, meaning in FILTER_HELP]
    return "\n".join(rows)


def test_docs_filters_md_lists_exactly_the_operators_of_the_code() -> None:
    text = DOCS.read_text()
    found = re.search(r"<!-- operators -->\n(.*?)\n<!-- /operators -->", text, re.DOTALL)
    assert found is not None, "docs/filters.md lost its operator table markers"
    assert found.group(1) == _help_table()
