"""The demo's HTTP/2 cleartext (h2c) catalog: a small ASGI app served by Hypercorn, and a client
built on python-hyper's ``h2`` that reaches it both ways h2c allows: an HTTP/1.1 ``Upgrade: h2c``
(the upgraded request is stream 1) and prior knowledge (the connection preface straight away).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import h2.config
import h2.connection
import h2.events
from hypercorn.asyncio import serve
from hypercorn.config import Config

from tui.demo.shop import PRODUCTS

HOST = "catalog.demo.svc.cluster.local"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def catalog(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /catalog/products`` and ``GET /catalog/products/SKU`` as JSON."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/catalog/products":
        status = 200
        body: object = [
            {"sku": sku, "name": name, "price": price} for sku, (name, price) in PRODUCTS.items()
        ]
    elif path.startswith("/catalog/products/") and path.rsplit("/", 1)[1] in PRODUCTS:
        sku = path.rsplit("/", 1)[1]
        status, body = 200, {"sku": sku, "name": PRODUCTS[sku][0], "price": PRODUCTS[sku][1]}
    else:
        status, body = 404, {"error": f"no such page {path}"}
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def run_server(port: int, stop: asyncio.Event) -> None:
    config = Config()
    config.bind = [f"[::]:{port}"]
    config.accesslog = None
    config.errorlog = None
    await serve(catalog, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


class H2cClient:
    """One HTTP/2 connection to the catalog; ``upgrade`` chooses how it starts."""

    def __init__(self, address: str, port: int, upgrade: bool) -> None:
        self.address, self.port, self.upgrade = address, port, upgrade
        self._connection = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, list[Any]] = {}

    async def open(self, first_path: str) -> int | None:
        """Connect; with ``upgrade``, ``first_path`` is the upgraded request and its status is
        returned (stream 1), else None."""
        self._reader, self._writer = await asyncio.open_connection(self.address, self.port)
        connection = self._connection
        if not self.upgrade:
            connection.initiate_connection()
            await self._flush()
            return None
        settings = connection.initiate_upgrade_connection()
        self._writer.write(
            f"GET {first_path} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: catalog-sync/2.0\r\n"
            f"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            f"HTTP2-Settings: {(settings or b'').decode()}\r\n\r\n".encode()
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"the server did not switch to HTTP/2: {head[:40]!r}")
        await self._flush()
        return await self._response(1)

    async def get(self, path: str) -> int:
        connection = self._connection
        stream = connection.get_next_available_stream_id()
        connection.send_headers(stream, [
            (":method", "GET"), (":scheme", "http"), (":authority", HOST), (":path", path),
            ("user-agent", "catalog-sync/2.0"), ("accept", "application/json"),
        ], end_stream=True)  # fmt: skip
        await self._flush()
        return await self._response(stream)

    async def _response(self, stream: int) -> int:
        status = 0
        while True:
            for event in self._pending.pop(stream, []):
                if isinstance(event, h2.events.ResponseReceived):
                    headers = dict(event.headers or [])
                    status = int(headers.get(b":status", b"0"))
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    return status
            await self._read()

    async def _read(self) -> None:
        assert self._reader is not None
        data = await self._reader.read(65536)
        if not data:
            raise ConnectionResetError("the catalog closed the connection")
        for event in self._connection.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self._connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            stream = getattr(event, "stream_id", None)
            if stream:
                self._pending.setdefault(stream, []).append(event)
        await self._flush()

    async def _flush(self) -> None:
        assert self._writer is not None
        self._writer.write(self._connection.data_to_send())
        await self._writer.drain()

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                self._connection.close_connection()
                writer.write(self._connection.data_to_send())
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def catalog_paths(rng: random.Random, count: int) -> list[str]:
    choices = [
        "/catalog/products",
        *(f"/catalog/products/{sku}" for sku in PRODUCTS),
        "/catalog/products/sku-0000",
    ]
    return [rng.choice(choices) for _ in range(count)]
