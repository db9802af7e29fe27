"""The detail pane's text for what comes besides headers: decoded bodies, trailers, 1xx
responses and WebSocket messages (rendered as the pane renders them, then read as text)."""

from __future__ import annotations

import gzip
import io

import pytest
from rich.console import Console

from tests.unit.http_streams import Stream, c2s, replay, s2c
from tests.unit.ws_streams import chat, decode
from tui.model.flows import Connection, Exchange
from tui.views.widgets.detail import exchange_view

pytestmark = pytest.mark.timeout(30)


def text_of(exchange: Exchange, connection: Connection) -> str:
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None)
    console.print(*exchange_view(exchange, connection, reveal=True))
    return out.getvalue()


def test_a_gzip_body_is_shown_decoded_and_says_so() -> None:
    page = b"<p>" + b"decoded text " * 50 + b"</p>"
    zipped = gzip.compress(page)
    conn, _ = replay(
        Stream(
            "gz",
            (
                c2s(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
                s2c(
                    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
                    % len(zipped)
                    + zipped
                ),
            ),
        )
    )
    text = text_of(conn.exchanges[0], conn)
    assert "decoded from gzip" in text
    assert "decoded text decoded text" in text


def test_trailers_and_interim_responses_are_shown_in_order() -> None:
    conn, _ = replay(
        Stream(
            "tr",
            (
                c2s(b"PUT /u HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"),
                c2s(b"Expect: 100-continue\r\n\r\n"),
                s2c(b"HTTP/1.1 100 Continue\r\n\r\n"),
                c2s(b"ok"),
                s2c(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"2\r\nhi\r\n0\r\nX-Sum: 42\r\n\r\n"
                ),
            ),
        )
    )
    text = text_of(conn.exchanges[0], conn)
    order = [
        text.index(part)
        for part in (
            "HTTP/1.1 100 Continue",
            "HTTP/1.1 200 OK",
            "response body",
            "response trailers",
            "X-Sum",
        )
    ]
    assert order == sorted(order)


def test_websocket_messages_are_listed_under_the_response() -> None:
    exchange = decode(chat(deflate=True))
    conn, _ = replay(Stream("ws", (c2s(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),)))
    conn.protocol = "ws"
    text = text_of(exchange, conn)
    assert "switched to WebSocket" in text
    assert "messages (14)" in text
    assert "→ " in text
    assert "← " in text
    assert "hello, is anyone there?" in text
    assert "1000 normal closure: bye" in text
    assert "compressed" in text
