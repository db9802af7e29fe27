"""The demo's traffic generator: the clients of a small shop, talking to it from the host.

Four signed-in users (alice, bob, carol, dave; each with a tenant, a bearer token and their own
user agent) browse over keep-alive connections that they renew now and then; a cron job and a
legacy client use one short connection per request; kube-probe checks /healthz every second and
/readyz every five; Prometheus scrapes /metrics; a cache client speaks a line protocol on
another port and a TLS client sends a ClientHello to a third; gRPC, HTTP/2 and WebSocket
clients (tui/demo/service_traffic.py) call the service's other ports. Rates stay at a few
requests per second per client, and everything stops with the generator.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import random
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass

import h11

from tui.demo.outcomes import ClientCall as ClientCall
from tui.demo.service_traffic import ServiceClients, ServicePorts
from tui.demo.shop import PRODUCTS, USERS

HOST_HEADER = "shop.demo.svc.cluster.local"
TLS_SERVER_NAME = "payments.demo.svc.cluster.local"


@dataclass(frozen=True)
class Persona:
    login: str
    user_agent: str

    @property
    def tenant(self) -> str:
        return str(USERS[self.login]["tenant"])

    @property
    def token(self) -> str:
        """A JWT-shaped bearer token (unsigned: the demo shop only checks that there is one)."""

        def part(value: Mapping[str, object]) -> str:
            raw = json.dumps(value, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        claims = {"sub": self.login, "tenant": self.tenant, "iss": "https://id.demo.local"}
        signature = base64.urlsafe_b64encode(self.login.encode() * 4).rstrip(b"=").decode()
        return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{signature}"


PERSONAS = (
    Persona(
        "alice",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    ),
    Persona("bob", "shop-ios/5.12.0 (iPhone; iOS 17.5.1; Scale/3.00)"),
    Persona("carol", "okhttp/4.12.0"),
    Persona("dave", "python-requests/2.32.3"),
)


class HttpClient:
    """HTTP/1.1 over one connection at a time (h11 keeps the protocol honest); reconnects when
    the server or a ``connection: close`` ends it."""

    def __init__(self, address: str, port: int, numbers: Iterator[int]) -> None:
        self.address = address
        self.port = port
        self.connection = 0
        self._numbers = numbers
        self._connection: h11.Connection | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.address, self.port)
            self.connection = next(self._numbers)
            self._connection = h11.Connection(h11.CLIENT)
        connection, reader, writer = self._connection, self._reader, self._writer
        assert connection is not None
        assert reader is not None
        all_headers = [("host", HOST_HEADER), *headers]
        if body:
            all_headers.append(("content-length", str(len(body))))
        try:
            writer.write(
                connection.send(h11.Request(method=method, target=target, headers=all_headers))
                or b""
            )
            if body:
                writer.write(connection.send(h11.Data(data=body)) or b"")
            writer.write(connection.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            status, content = 0, bytearray()
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    content += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionResetError("the server closed the connection")
        except BaseException:
            await self.close()
            raise
        if connection.our_state is h11.DONE and connection.their_state is h11.DONE:
            connection.start_next_cycle()
        else:
            await self.close()
        return status, bytes(content)

    async def close(self) -> None:
        writer, self._writer, self._reader, self._connection = self._writer, None, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def client_hello(server_name: str) -> bytes:
    """The first flight of a real TLS client (Python's ssl), with SNI and ALPN."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


class TrafficGenerator:
    """Runs every client until stopped; reports each call to ``on_call``."""

    def __init__(
        self,
        address: str,
        *,
        http_port: int = 8080,
        cache_port: int = 7000,
        tls_port: int = 8443,
        service_ports: ServicePorts | None = None,
        on_call: Callable[[ClientCall], None] = lambda call: None,
        rng: random.Random | None = None,
        pace: float = 1.0,
    ) -> None:
        self.address = address
        self.http_port = http_port
        self.cache_port = cache_port
        self.tls_port = tls_port
        self.on_call = on_call
        self.rng = rng or random.Random()
        self.pace = pace
        """Multiplies every pause: 2.0 halves the request rate."""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._numbers = itertools.count(1)
        self.services = ServiceClients(
            address, service_ports or ServicePorts(), self._report, self.rng, pace, self._numbers
        )

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every client until cancelled."""
        clients = [self._user(persona) for persona in PERSONAS]
        clients += [self._probe(), self._readiness(), self._scraper(), self._cron(), self._legacy()]
        clients += [self._cache(), self._tls(), *self.services.clients()]
        async with asyncio.TaskGroup() as group:
            for client in clients:
                group.create_task(client)

    def start(self) -> None:
        """Run in a thread of its own (the app owns the main thread's event loop)."""
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._stopped = asyncio.Event()
            ready.set()
            try:
                loop.run_until_complete(self._run_until_stopped())
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="podtap-demo-traffic", daemon=True)
        self._thread.start()
        ready.wait()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None or self._loop is None or self._stopped is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)
        self._thread = None

    async def _run_until_stopped(self) -> None:
        assert self._stopped is not None
        task = asyncio.create_task(self.run())
        await self._stopped.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _report(self, call: ClientCall) -> None:
        # Late-bound: callers may replace on_call after construction.
        self.on_call(call)

    # -- the clients -------------------------------------------------------------------------

    def _http_client(self) -> HttpClient:
        return HttpClient(self.address, self.http_port, self._numbers)

    async def _pause(self, low: float, high: float) -> None:
        await asyncio.sleep(self.rng.uniform(low, high) * self.pace)

    async def _every(self, period: float, action: Callable[[], Awaitable[None]]) -> None:
        next_at = time.monotonic()
        while True:
            await action()
            next_at += period * self.pace
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _http(
        self,
        client: HttpClient,
        who: str,
        kind: str,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
    ) -> None:
        started = time.monotonic()
        try:
            status, _ = await client.request(method, target, headers, body)
            outcome = str(status)
        except OSError as error:
            outcome = f"error: {error.strerror or error}"
        except h11.ProtocolError as error:
            outcome = f"error: {error}"
        elapsed = time.monotonic() - started
        call = ClientCall(who, kind, f"{method} {target}", outcome, elapsed, client.connection)
        self.on_call(call)

    def _headers(self, persona: Persona, *, json_body: bool = False) -> list[tuple[str, str]]:
        headers = [
            ("user-agent", persona.user_agent),
            ("accept", "application/json"),
            ("authorization", f"Bearer {persona.token}"),
            ("x-user-id", persona.login),
            ("x-tenant", persona.tenant),
            ("x-request-id", str(uuid.UUID(int=self.rng.getrandbits(128), version=4))),
        ]
        if json_body:
            headers.append(("content-type", "application/json"))
        return headers

    def _user_request(self, persona: Persona) -> tuple[str, str, bytes]:
        rng = self.rng
        sku = rng.choice(list(PRODUCTS))
        choice = rng.choices(
            ["me", "someone", "orders", "order", "cart", "add", "remove", "search"],
            weights=[2, 1, 3, 1, 2, 1, 1, 2],
        )[0]
        if choice == "me":
            return "GET", f"/api/users/{persona.login}", b""
        if choice == "someone":
            return "GET", f"/api/users/{rng.choice([*USERS, 'mallory', 'eve'])}", b""
        if choice == "orders":
            return "GET", "/api/orders", b""
        if choice == "order":
            items = [{"sku": rng.choice(list(PRODUCTS)), "qty": rng.randint(1, 3)}]
            body = json.dumps(
                {"items": items, "note": rng.choice(["", "gift wrap", "leave at door"])}
            )
            if rng.random() < 0.05:
                body = '{"items": "everything"'  # a broken client build: 400
            return "POST", "/api/orders", body.encode()
        if choice == "cart":
            return "GET", "/api/cart", b""
        if choice == "add":
            return "POST", "/api/cart/items", json.dumps({"sku": sku}).encode()
        if choice == "remove":
            return "DELETE", f"/api/cart/items/{sku}", b""
        query = rng.choice(["mug", "kettle", "beans", "grinder", "espresso"])
        return "GET", f"/api/search?q={query}&limit=10", b""

    async def _user(self, persona: Persona) -> None:
        client = self._http_client()
        try:
            while True:
                # A browser tab or app session: some requests on one connection, then a new one.
                for _ in range(self.rng.randint(4, 20)):
                    method, target, body = self._user_request(persona)
                    headers = self._headers(persona, json_body=bool(body))
                    await self._http(
                        client, persona.login, "keep-alive", method, target, headers, body
                    )
                    await self._pause(0.25, 0.9)
                await client.close()
        finally:
            await client.close()

    async def _short(self, who: str, target: str, headers: list[tuple[str, str]]) -> None:
        client = self._http_client()
        try:
            await self._http(
                client, who, "short", "GET", target, [*headers, ("connection", "close")]
            )
        finally:
            await client.close()

    async def _probe(self) -> None:
        headers = [("user-agent", "kube-probe/1.29"), ("accept", "*/*"), ("connection", "close")]

        async def check() -> None:
            client = self._http_client()
            try:
                await self._http(client, "kubelet", "probe", "GET", "/healthz", headers)
            finally:
                await client.close()

        await self._every(1.0, check)

    async def _readiness(self) -> None:
        headers = [("user-agent", "kube-probe/1.29"), ("accept", "*/*"), ("connection", "close")]

        async def check() -> None:
            client = self._http_client()
            try:
                await self._http(client, "kubelet", "probe", "GET", "/readyz", headers)
            finally:
                await client.close()

        await asyncio.sleep(0.5)
        await self._every(5.0, check)

    async def _scraper(self) -> None:
        client = self._http_client()
        headers = [
            ("user-agent", "Prometheus/2.53.0"),
            ("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
            ("x-prometheus-scrape-timeout-seconds", "10"),
        ]
        try:
            await self._every(
                5.0,
                lambda: self._http(client, "prometheus", "keep-alive", "GET", "/metrics", headers),
            )
        finally:
            await client.close()

    async def _cron(self) -> None:
        admin = [
            ("user-agent", "orders-sync/1.8 (cron)"),
            ("authorization", "Bearer svc-orders-sync"),
            ("x-user-id", "admin"),
            ("x-tenant", "acme"),
        ]
        await asyncio.sleep(0.3)
        await self._every(2.0, lambda: self._short("cron", "/api/orders?status=pending", admin))

    async def _legacy(self) -> None:
        headers = [("user-agent", "curl/7.88.1"), ("accept", "*/*")]

        async def call() -> None:
            target = self.rng.choice(["/api/orders", "/favicon.ico", "/api/v1/legacy/export"])
            await self._short("legacy", target, headers)

        await asyncio.sleep(0.7)
        await self._every(4.0, call)

    async def _cache(self) -> None:
        """A cache client on the line-protocol port, over one long connection."""
        keys = [f"session:{login}" for login in USERS] + ["feature:checkout-v2"]
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.address, self.cache_port)
                number = next(self._numbers)
            except OSError as error:
                self.on_call(ClientCall("cache", "cache", "connect", f"error: {error}", 0.0))
                await self._pause(1.0, 2.0)
                continue
            try:
                for _ in range(self.rng.randint(10, 40)):
                    key = self.rng.choice(keys)
                    command = self.rng.choice(
                        ["PING", f"GET {key}", f"SET {key} {self.rng.getrandbits(32):08x}"]
                    )
                    started = time.monotonic()
                    writer.write(command.encode() + b"\r\n")
                    await writer.drain()
                    reply = (await reader.readline()).decode(errors="replace").strip()
                    elapsed = time.monotonic() - started
                    self.on_call(
                        ClientCall("cache", "cache", command, reply or "closed", elapsed, number)
                    )
                    await self._pause(0.6, 1.4)
                writer.write(b"QUIT\r\n")
                await writer.drain()
                await reader.readline()
            except OSError as error:
                failed = ClientCall("cache", "cache", "session", f"error: {error}", 0.0, number)
                self.on_call(failed)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def _tls(self) -> None:
        hello = client_hello(TLS_SERVER_NAME)

        async def handshake() -> None:
            started = time.monotonic()
            number = 0
            try:
                reader, writer = await asyncio.open_connection(self.address, self.tls_port)
                number = next(self._numbers)
                try:
                    writer.write(hello)
                    await writer.drain()
                    answer = await reader.read(64)
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
                outcome = "alert" if answer[:1] == b"\x15" else f"unexpected {answer[:8].hex()}"
            except OSError as error:
                outcome = f"error: {error}"
            elapsed = time.monotonic() - started
            request = f"ClientHello {TLS_SERVER_NAME}"
            self.on_call(ClientCall("payments", "tls", request, outcome, elapsed, number))

        await asyncio.sleep(1.2)
        await self._every(5.0, handshake)
