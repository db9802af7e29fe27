"""Captured-style HTTP/1.x streams for the decoder tests, and a way to replay them.

A stream is the sequence of events the agent would emit for one connection: data in either
direction, gaps, and the close. Replaying may cut each data event into pieces (as TCP segments
would be) without changing its capture time, so any difference in the result is the decoder's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tui.model.flows import Connection, Exchange
from tui.model.http import ConnectionDecoder

Kind = Literal["in", "out", "gap-in", "gap-out"]


@dataclass(frozen=True)
class Step:
    kind: Kind
    data: bytes = b""
    length: int = 0


@dataclass(frozen=True)
class Stream:
    name: str
    steps: tuple[Step, ...]
    mid_stream: bool = False
    closed: bool = True


def c2s(data: bytes) -> Step:
    return Step("in", data)


def s2c(data: bytes) -> Step:
    return Step("out", data)


def gap(kind: Literal["gap-in", "gap-out"], length: int) -> Step:
    return Step(kind, length=length)


@dataclass
class Collected:
    started: list[Exchange] = field(default_factory=list)
    changed: list[Exchange] = field(default_factory=list)

    def exchange_started(self, exchange: Exchange) -> None:
        self.started.append(exchange)

    def exchange_changed(self, exchange: Exchange) -> None:
        self.changed.append(exchange)


Splitter = Callable[[int, bytes], Sequence[bytes]]


def whole(_index: int, data: bytes) -> Sequence[bytes]:
    return [data]


def replay(
    stream: Stream, split: Splitter = whole, body_cap: int = 65_536
) -> tuple[Connection, Collected]:
    conn = Connection(
        key=("local", 7),
        source="local",
        conn=7,
        client="10.0.0.1",
        client_port=40000,
        server="10.0.0.2",
        server_port=80,
        opened=0.0,
        mid_stream=stream.mid_stream,
    )
    decoder = ConnectionDecoder(conn, body_cap=body_cap)
    sink = Collected()
    for index, step in enumerate(stream.steps):
        ts = 1.0 + index
        if step.kind in ("in", "out"):
            direction: Literal["in", "out"] = "in" if step.kind == "in" else "out"
            for piece in split(index, step.data):
                if piece:
                    decoder.feed(direction, piece, ts, sink)
        else:
            decoder.gap("in" if step.kind == "gap-in" else "out", step.length, ts, sink)
    if stream.closed:
        decoder.close(1.0 + len(stream.steps), sink)
    return conn, sink


def summary(conn: Connection) -> dict[str, Any]:
    """Everything decoded, as plain values (error texts reduced to their presence)."""

    def exchange(ex: Exchange) -> dict[str, Any]:
        request = ex.request
        response = ex.response
        return {
            "index": ex.index,
            "request": [
                request.method,
                request.target,
                request.path,
                request.http_version,
                request.host,
                request.headers,
                request.trailers,
                request.body,
                request.body_length,
                request.complete,
            ],
            "response": None
            if response is None
            else [
                response.status,
                response.reason,
                response.http_version,
                response.headers,
                response.trailers,
                response.body,
                response.body_length,
                response.complete,
            ],
            "informational": [r.status for r in ex.informational],
            "times": [ex.started, ex.request_finished, ex.response_started, ex.finished],
            "incomplete": ex.incomplete,
            "error": ex.error is not None,
            "upgraded": ex.upgraded,
        }

    return {
        "protocol": conn.protocol,
        "tls": None if conn.tls is None else [conn.tls.sni, conn.tls.alpn, conn.tls.version],
        "bytes": [conn.bytes_in, conn.bytes_out],
        "last_status": conn.last_status,
        "errors": len(conn.errors),
        "exchanges": [exchange(ex) for ex in conn.exchanges],
    }


def _request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: shop.example", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _response(status: str, *headers: str, body: bytes = b"", length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


JSON_BODY = json.dumps({"user": "alice", "items": [1, 2, 3]}).encode()


def _client_hello(sni: str, alpn: list[str]) -> bytes:
    def vec(size: int, data: bytes) -> bytes:
        return len(data).to_bytes(size, "big") + data

    name = vec(2, b"\x00" + vec(2, sni.encode()))
    protocols = vec(2, b"".join(vec(1, p.encode()) for p in alpn))
    versions = vec(1, b"\x0a\x0a\x03\x04\x03\x03")
    extensions = b"".join(
        [b"\x00\x00", vec(2, name), b"\x00\x10", vec(2, protocols), b"\x00\x2b", vec(2, versions)]
    )
    body = (
        b"\x03\x03"
        + bytes(range(32))
        + vec(1, b"")
        + vec(2, b"\x13\x01\x13\x02")
        + vec(1, b"\x00")
        + vec(2, extensions)
    )
    handshake = b"\x01" + vec(3, body)
    return b"\x16\x03\x01" + vec(2, handshake)


WEBSOCKET_FRAMES = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58" + b"GET / HTTP/1.1\r\n\r\n"

STREAMS: list[Stream] = [
    Stream(
        "simple-get-keepalive",
        (
            c2s(_request("GET", "/api/items?page=2", "User-Agent: curl/8.5", "X-User-Id: alice")),
            s2c(_response("200 OK", "Content-Type: application/json", body=JSON_BODY)),
            c2s(_request("GET", "/api/items/3", "X-User-Id: bob")),
            s2c(_response("404 Not Found", body=b"no such item")),
        ),
    ),
    Stream(
        "post-content-length",
        (
            c2s(_request("POST", "/api/orders", "Content-Type: application/json", body=JSON_BODY)),
            s2c(_response("201 Created", "Location: /api/orders/9", body=b'{"id": 9}')),
        ),
    ),
    Stream(
        "chunked-with-trailers",
        (
            c2s(
                b"POST /upload HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n"
                b"\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n"
            ),
            s2c(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Time\r\n\r\n"
                b"3\r\nabc\r\n0\r\nX-Time: 12ms\r\n\r\n"
            ),
        ),
    ),
    Stream(
        "head-then-get",
        (
            c2s(_request("HEAD", "/file")),
            s2c(_response("200 OK", "Content-Length: 1000", length=False)),
            c2s(_request("GET", "/small")),
            s2c(_response("200 OK", body=b"tiny")),
        ),
    ),
    Stream(
        "expect-100-continue",
        (
            c2s(_request("PUT", "/blob", "Expect: 100-continue", "Content-Length: 10")),
            s2c(b"HTTP/1.1 100 Continue\r\n\r\n"),
            c2s(b"0123456789"),
            s2c(_response("204 No Content", length=False)),
        ),
    ),
    Stream(
        "no-content-and-not-modified",
        (
            c2s(_request("DELETE", "/api/items/3")),
            s2c(_response("204 No Content", length=False)),
            c2s(_request("GET", "/logo.png", 'If-None-Match: "abc"')),
            s2c(_response("304 Not Modified", 'ETag: "abc"', "Content-Length: 5000", length=False)),
            c2s(_request("GET", "/after")),
            s2c(_response("200 OK", body=b"after")),
        ),
    ),
    Stream(
        "websocket-upgrade",
        (
            c2s(
                _request(
                    "GET",
                    "/ws",
                    "Connection: Upgrade",
                    "Upgrade: websocket",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Version: 13",
                )
            ),
            s2c(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05hello"
            ),
            c2s(WEBSOCKET_FRAMES),
            s2c(b"\x81\x02hiHTTP/1.1 200 OK\r\n\r\n"),
        ),
    ),
    Stream(
        "upgrade-declined",
        (
            c2s(_request("GET", "/ws", "Connection: upgrade", "Upgrade: websocket")),
            s2c(_response("426 Upgrade Required", body=b"nope")),
            c2s(_request("GET", "/plain")),
            s2c(_response("200 OK", body=b"plain")),
        ),
    ),
    Stream(
        "connect-tunnel",
        (
            c2s(b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n"),
            s2c(b"HTTP/1.1 200 Connection established\r\n\r\n"),
            c2s(_client_hello("db.internal", ["postgresql"])),
            s2c(b"\x16\x03\x03\x00\x04\x02\x00\x00\x00"),
        ),
    ),
    Stream(
        "http10-close-delimited",
        (
            c2s(b"GET /legacy HTTP/1.0\r\nUser-Agent: old\r\n\r\n"),
            s2c(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this"),
            s2c(b" until the end\n"),
        ),
    ),
    Stream(
        "pipelined-three",
        (
            c2s(_request("GET", "/one") + _request("HEAD", "/two") + _request("GET", "/three")),
            s2c(
                _response("200 OK", body=b"1")
                + _response("200 OK", "Content-Length: 99", length=False)
                + _response("500 Internal Server Error", body=b"boom")
            ),
        ),
    ),
    Stream(
        "malformed-then-valid",
        (
            c2s(
                b"GET /bad HTTP/1.1\r\nHost: x\r\nthis header has no colon\r\n\r\n"
                + _request("GET", "/ok")
            ),
            s2c(_response("400 Bad Request", body=b"bad") + _response("200 OK", body=b"ok")),
        ),
    ),
    Stream(
        "garbage-between-requests",
        (
            c2s(_request("GET", "/before")),
            s2c(_response("200 OK", body=b"before")),
            c2s(b"\x00\x01binary junk\xff\r\nstill junk " + _request("POST", "/after", body=b"x")),
            s2c(_response("200 OK", body=b"after")),
        ),
    ),
    Stream(
        "response-waits-past-junk",
        (
            c2s(_request("GET", "/one") + b"junk"),
            s2c(_response("200 OK", body=b"one") + _response("200 OK", body=b"two")),
            c2s(b" more junk\r\n\r\nstill junk\r\n" + _request("GET", "/two")),
        ),
        closed=False,
    ),
    Stream(
        "response-waiting-at-a-server-gap",
        (
            c2s(_request("GET", "/one") + _request("GET", "/two") + b"("),
            s2c(b"".join(_response("200 OK", body=body) for body in (b"one", b"two", b"three"))),
            gap("gap-out", 1),
            s2c(_response("200 OK", body=b"four")),
            c2s(b"X-CUSTOM / HTTP/1.1\r\n\r\n" + _request("GET", "/three")),
        ),
    ),
    Stream(
        "response-waiting-at-a-client-gap",
        (
            c2s(_request("GET", "/one") + b"GET /tw"),
            s2c(_response("200 OK", body=b"one") + _response("200 OK", body=b"two")),
            gap("gap-in", 30),
            c2s(_request("GET", "/three")),
            s2c(_response("200 OK", body=b"three")),
        ),
        closed=False,
    ),
    Stream(
        "malformed-response",
        (
            c2s(_request("GET", "/a")),
            s2c(b"HTTP/1.1 2x0 Weird\r\nContent-Length: 0\r\n\r\n"),
            c2s(_request("GET", "/b")),
            s2c(_response("200 OK", body=b"b")),
        ),
    ),
    Stream(
        "mid-stream-join",
        (
            c2s(b'rest-of-a-body"}GET /next HTTP/1.1\r\nHost: shop.example\r\n\r\n'),
            s2c(b"tail of the last response" + _response("200 OK", body=b"next")),
        ),
        mid_stream=True,
    ),
    Stream(
        "mid-stream-response-first",
        (
            s2c(b"ody}\r\n" + _response("200 OK", body=b"orphan")),
            c2s(_request("GET", "/later")),
            s2c(_response("200 OK", body=b"later")),
        ),
        mid_stream=True,
    ),
    Stream(
        "gap-in-the-middle-of-a-body",
        (
            c2s(_request("POST", "/big", body=b"A" * 40)[:-30]),
            gap("gap-in", 20),
            c2s(b"B" * 10),
            s2c(_response("200 OK", body=b"done")),
            c2s(_request("GET", "/next")),
            s2c(_response("200 OK", body=b"next")),
        ),
    ),
    Stream(
        "gap-in-a-chunked-response",
        (
            c2s(_request("GET", "/stream")),
            s2c(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"),
            gap("gap-out", 100),
            s2c(b"lo\r\n0\r\n\r\n"),
            c2s(_request("GET", "/again")),
            s2c(_response("200 OK", body=b"again")),
        ),
    ),
    Stream(
        "gap-between-requests",
        (
            c2s(_request("GET", "/first")),
            s2c(_response("200 OK", body=b"first")),
            gap("gap-in", 57),
            c2s(b"p\r\n\r\n" + _request("GET", "/third")),
            s2c(_response("200 OK", body=b"second") + _response("200 OK", body=b"third")),
        ),
    ),
    Stream(
        "tls-client-hello",
        (
            c2s(_client_hello("api.example.com", ["h2", "http/1.1"])),
            s2c(b"\x16\x03\x03\x00\x04\x02\x00\x00\x00"),
        ),
    ),
    Stream(
        "http2-prior-knowledge",
        (
            c2s(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00"),
            s2c(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"),
        ),
    ),
    Stream(
        "plain-tcp",
        (
            s2c(b"220 mail.example ESMTP\r\n"),
            c2s(b"EHLO me\r\n"),
            s2c(b"250 OK\r\n"),
        ),
    ),
    Stream(
        "closed-mid-response",
        (
            c2s(_request("GET", "/cut")),
            s2c(_response("200 OK", body=b"0123456789")[:-4]),
        ),
    ),
    Stream(
        "server-junk-with-no-request-waiting",
        (
            c2s(_request("GET", "/a")),
            s2c(_response("200 OK", body=b"a")),
            s2c(b"junk\r\n"),
            c2s(_request("GET", "/b")),
            s2c(_response("404 Not Found")),
        ),
    ),
    Stream(
        "server-ends-on-a-status-line-start",
        (c2s(_request("GET", "/a")), s2c(_response("200 OK") + b"HT")),
    ),
    Stream(
        "declined-upgrade-then-server-junk",
        (
            c2s(_request("GET", "/chat", "Connection: upgrade", "Upgrade: websocket")),
            gap("gap-in", 2),
            c2s(_request("GET", "/one") + _request("GET", "/two")),
            s2c(_response("204 No Content", length=False) + _request("GET", "/junk")),
            s2c(_response("200 OK", body=b"one")),
        ),
        closed=False,
    ),
    Stream(
        "open-connection-partial",
        (
            c2s(_request("GET", "/slow")),
            s2c(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"),
        ),
        closed=False,
    ),
]

BY_NAME = {stream.name: stream for stream in STREAMS}
