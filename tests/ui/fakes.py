"""A scripted Session for the app's tests: real agent events carrying real HTTP bytes.

The bytes are what curl, Python's http.client and an OpenSSL client put on the wire; the
timestamps are fixed so that screens rendered from them are the same on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import Self

from agent.events import (
    AnyEvent,
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    Gap,
    Hello,
    Stats,
)
from tui.model.updates import AgentEvent, SourceStatus, Update

T0 = 1_767_225_600.0
"""2026-01-01 00:00:00 UTC: the scripted traffic starts here."""

SERVICE_IP = "198.18.0.2"
SERVICE_PORT = 8080


class FakeSession:
    """Yields ``batches`` (optionally ``delay`` apart), then ends or stays open until closed."""

    def __init__(
        self,
        batches: Iterable[Sequence[Update]],
        *,
        description: str = "netns/shop",
        finite: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.description = description
        self.batches = [list(batch) for batch in batches]
        self.finite = finite
        self.delay = delay
        self.entered = False
        self.exited = False
        self.delivered = 0
        self._closed = asyncio.Event()

    async def __aenter__(self) -> Self:
        self.entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.exited = True
        self._closed.set()

    async def updates(self) -> AsyncIterator[Sequence[Update]]:
        for batch in self.batches:
            if self.delay:
                await asyncio.sleep(self.delay)
            self.delivered += 1
            yield batch
        if not self.finite:
            await self._closed.wait()


def request(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    host: str = f"{SERVICE_IP}:{SERVICE_PORT}",
    user_agent: str = "curl/7.88.1",
) -> bytes:
    """A request as curl sends it: Host, User-Agent, Accept, then the extra headers."""
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}",
        f"User-Agent: {user_agent}",
        "Accept: */*",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    404: "Not Found",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def response(
    status: int,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
    content_type: str = "application/json",
) -> bytes:
    """A response as Python's http.server writes it (fixed Date for stable screens)."""
    lines = [
        f"HTTP/1.1 {status} {REASONS[status]}",
        "Server: BaseHTTP/0.6 Python/3.11.2",
        "Date: Thu, 01 Jan 2026 00:00:00 GMT",
    ]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def json_body(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def tls_client_hello(server_name: str, alpn: Sequence[str] = ("h2", "http/1.1")) -> bytes:
    """The first flight of a real OpenSSL client: a ClientHello with SNI and ALPN."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(list(alpn))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


class Script:
    """Builds one agent's event stream; every event ``step`` seconds after the previous."""

    def __init__(self, source: str = "local", start: float = T0, step: float = 0.001) -> None:
        self.source = source
        self.now = start
        self.step = step
        self.seq = 0
        self.events: list[AnyEvent] = []

    def _add(self, event: AnyEvent) -> None:
        self.seq += 1
        event.seq = self.seq
        self.events.append(event)

    def _tick(self, seconds: float | None = None) -> float:
        self.now += self.step if seconds is None else seconds
        return self.now

    def hello(self, ports: Sequence[int] = (SERVICE_PORT,)) -> Self:
        self.events.append(
            Hello(
                ts=self._tick(),
                protocol=1,
                version="0.1.0",
                agent_id=f"agent-{self.source}",
                target="netns/shop",
                ports=list(ports),
                interfaces=["lo", "eth0"],
                oldest_seq=1,
                next_seq=1,
            )
        )
        return self

    def open(
        self,
        conn: int,
        client: str,
        client_port: int,
        *,
        server: str = SERVICE_IP,
        port: int = SERVICE_PORT,
        mid_stream: bool = False,
    ) -> Self:
        self._add(
            ConnectionOpened(
                ts=self._tick(),
                conn=conn,
                client=client,
                client_port=client_port,
                server=server,
                server_port=port,
                interface="eth0",
                mid_stream=mid_stream,
            )
        )
        return self

    def data(self, conn: int, direction: str, data: bytes, after: float | None = None) -> Self:
        assert direction in ("in", "out")
        self._add(
            DataReceived(
                ts=self._tick(after),
                conn=conn,
                direction="in" if direction == "in" else "out",
                data=data,
            )
        )
        return self

    def exchange(
        self, conn: int, request_bytes: bytes, response_bytes: bytes, latency: float = 0.004
    ) -> Self:
        return self.data(conn, "in", request_bytes).data(conn, "out", response_bytes, latency)

    def gap(self, conn: int, direction: str, length: int) -> Self:
        self._add(
            Gap(
                ts=self._tick(),
                conn=conn,
                direction="in" if direction == "in" else "out",
                length=length,
            )
        )
        return self

    def close(self, conn: int, reason: str = "fin") -> Self:
        self._add(
            ConnectionClosed(ts=self._tick(), conn=conn, reason="rst" if reason == "rst" else "fin")
        )
        return self

    def stats(self, *, gaps: int = 0, gap_bytes: int = 0, kernel_drops: int = 0) -> Self:
        self._add(
            Stats(
                ts=self._tick(),
                packets=self.seq * 3,
                bytes=self.seq * 400,
                kernel_packets=self.seq * 3,
                kernel_drops=kernel_drops,
                open_connections=0,
                gaps=gaps,
                gap_bytes=gap_bytes,
            )
        )
        return self

    def wait(self, seconds: float) -> Self:
        self._tick(seconds)
        return self

    def updates(self) -> list[Update]:
        return [AgentEvent(self.source, event) for event in self.events]


USERS = ("alice", "bob", "carol", "dave")
TENANTS = {"alice": "acme", "bob": "acme", "carol": "globex", "dave": "initech"}


def user_headers(user: str, request_id: int) -> list[tuple[str, str]]:
    return [
        ("x-user-id", user),
        ("x-tenant", TENANTS[user]),
        ("x-request-id", f"req-{request_id:04d}"),
        ("Authorization", f"Bearer token-of-{user}"),
    ]


TLS_CONN, LINE_CONN, ORDER_CONN = 0, 1, 8
USER_CONNS = {"alice": 2, "bob": 3, "carol": 4, "dave": 5}
PROBE_CONNS = (6, 7)


def shop_script(source: str = "local") -> Script:
    """A shop service's traffic: a TLS client and a line-protocol client on other ports, users
    on keep-alive connections, a health probe, then a failing order and an unknown user."""
    s = Script(source).hello()
    s.open(TLS_CONN, "198.18.0.1", 43001, port=8443)
    s.data(TLS_CONN, "in", tls_client_hello("payments.internal"))
    s.open(LINE_CONN, "198.18.0.1", 43000, port=7000)
    s.data(LINE_CONN, "in", b"PING\r\n").data(LINE_CONN, "out", b"+PONG\r\n")
    request_id = 0
    for user, conn in USER_CONNS.items():
        s.open(conn, "198.18.0.1", 40100 + conn)
        for item in range(3 if user != "dave" else 1):
            request_id += 1
            s.exchange(
                conn,
                request(
                    "GET",
                    f"/api/users/{user}?expand=orders",
                    [*user_headers(user, request_id), ("Cookie", f"session={user}-cookie")],
                ),
                response(
                    200,
                    json_body({"id": user, "tenant": TENANTS[user], "orders": [item, item + 1]}),
                ),
                latency=0.003 + item / 1000,
            )
    for probe, conn in enumerate(PROBE_CONNS):
        s.open(conn, "198.18.0.1", 41000 + probe)
        s.exchange(
            conn,
            request("GET", "/healthz", user_agent="kube-probe/1.29"),
            response(200, b"ok", content_type="text/plain"),
            latency=0.001,
        )
        s.close(conn)
    s.open(ORDER_CONN, "198.18.0.1", 42000)
    request_id += 1
    s.exchange(
        ORDER_CONN,
        request(
            "POST",
            "/api/orders",
            [*user_headers("bob", request_id), ("Content-Type", "application/json")],
            json_body({"item": "book", "quantity": 2}),
        ),
        response(500, json_body({"error": "inventory unavailable"})),
        latency=0.120,
    )
    request_id += 1
    s.exchange(
        ORDER_CONN,
        request("GET", "/api/users/mallory", user_headers("carol", request_id)),
        response(404, json_body({"error": "no such user"})),
        latency=0.002,
    )
    s.close(ORDER_CONN, "rst")
    s.stats()
    return s


def shop_updates(source: str = "local") -> list[Update]:
    return [
        SourceStatus(source, "live", "capturing"),
        *shop_script(source).updates(),
    ]


def shop_session(**kwargs: object) -> FakeSession:
    """The shop traffic as one batch per ten updates (so the app merges bursts)."""
    updates = shop_updates()
    batches = [updates[i : i + 10] for i in range(0, len(updates), 10)]
    return FakeSession(batches, **kwargs)  # type: ignore[arg-type]
