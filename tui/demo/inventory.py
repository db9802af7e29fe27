"""The demo's gRPC service, ``demo.shop.Inventory``, and the warehouse client that calls it.

Built by hand on grpcio's generic handlers (no .proto file to compile); its messages are real
protobuf on the wire, so a reader sees field numbers, strings and varints:

- ``GetStock`` (unary): ``{1: sku}`` → ``{1: sku, 2: name, 3: available, 4: price in cents,
  5: warehouse...}``; an unknown sku ends with ``NOT_FOUND``.
- ``WatchPrices`` (server streaming): ``{1: sku, 2: count}`` → ``count`` times ``{1: sku,
  2: price in cents, 3: sequence}``.
- ``Reserve`` (client streaming): ``{1: sku, 2: quantity}``... → ``{1: reservation, 2: items}``.

The client asks some calls with gzip-compressed messages, as real services do.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable

import grpc
import grpc.aio

from tui.demo.protowire import decode, encode
from tui.demo.shop import PRODUCTS

SERVICE = "demo.shop.Inventory"
WAREHOUSES = ("lyon", "rotterdam", "gdansk")


def _identity(data: bytes) -> bytes:
    return data


def _sku(request: bytes) -> str:
    values = decode(request).get(1, [b""])
    value = values[0]
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _cents(sku: str) -> int:
    return round(PRODUCTS[sku][1] * 100)


class Inventory:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    async def get_stock(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        sku = _sku(request)
        if sku not in PRODUCTS:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no product {sku}")
        warehouses = self.rng.sample(WAREHOUSES, self.rng.randint(1, len(WAREHOUSES)))
        return encode(
            [
                (1, sku),
                (2, PRODUCTS[sku][0]),
                (3, self.rng.randint(0, 40)),
                (4, _cents(sku)),
                *((5, name) for name in warehouses),
            ]
        )

    async def watch_prices(
        self, request: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        fields = decode(request)
        sku = _sku(request)
        count = fields.get(2, [3])[0]
        if sku not in PRODUCTS or not isinstance(count, int):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot watch {sku}")
            return
        for sequence in range(min(count, 20)):
            price = _cents(sku) + self.rng.randint(-50, 50)
            yield encode([(1, sku), (2, price), (3, sequence)])
            await asyncio.sleep(0.05)

    async def reserve(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        items = 0
        async for request in requests:
            quantity = decode(request).get(2, [1])[0]
            items += quantity if isinstance(quantity, int) else 1
        return encode([(1, f"res-{uuid.uuid4().hex[:8]}"), (2, items)])

    def handler(self) -> grpc.GenericRpcHandler:
        raw = {"request_deserializer": _identity, "response_serializer": _identity}
        return grpc.method_handlers_generic_handler(SERVICE, {
            "GetStock": grpc.unary_unary_rpc_method_handler(self.get_stock, **raw),
            "WatchPrices": grpc.unary_stream_rpc_method_handler(self.watch_prices, **raw),
            "Reserve": grpc.stream_unary_rpc_method_handler(self.reserve, **raw),
        })  # fmt: skip


async def start_server(port: int, rng: random.Random) -> grpc.aio.Server:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((Inventory(rng).handler(),))
    server.add_insecure_port(f"[::]:{port}")
    await server.start()
    return server


Report = Callable[[str, str, float], None]
"""(call, outcome, seconds it took): told to the traffic generator after each call."""


class WarehouseClient:
    """A stock-keeping job: checks stock, watches prices, reserves items, over one channel."""

    def __init__(self, address: str, port: int, rng: random.Random) -> None:
        self.target = f"{address}:{port}"
        self.rng = rng

    def _method(self, name: str) -> str:
        return f"/{SERVICE}/{name}"

    async def round(self, channel: grpc.aio.Channel, report: Report) -> None:
        """One round of calls: a few stock checks (one for an unknown sku), a price watch and a
        reservation; each reported with its status."""
        raw = {"request_serializer": _identity, "response_deserializer": _identity}
        rng = self.rng
        get_stock = channel.unary_unary(self._method("GetStock"), **raw)
        for sku in [rng.choice(list(PRODUCTS)), rng.choice([*PRODUCTS, "sku-9999"])]:
            compression = grpc.Compression.Gzip if rng.random() < 0.5 else None
            await self._call(
                report,
                f"GetStock {sku}",
                get_stock(encode([(1, sku)]), compression=compression, timeout=5),
            )
        watch = channel.unary_stream(self._method("WatchPrices"), **raw)
        sku = rng.choice(list(PRODUCTS))
        ticks = watch(encode([(1, sku), (2, rng.randint(2, 5))]), timeout=5)
        await self._call(report, f"WatchPrices {sku}", _drain(ticks))
        reserve = channel.stream_unary(self._method("Reserve"), **raw)
        items = [
            encode([(1, rng.choice(list(PRODUCTS))), (2, rng.randint(1, 3))])
            for _ in range(rng.randint(2, 4))
        ]
        await self._call(
            report, "Reserve", reserve(_each(items), timeout=5, compression=grpc.Compression.Gzip)
        )

    async def _call(self, report: Report, what: str, call: object) -> None:
        started = time.monotonic()
        try:
            await call  # type: ignore[misc]  # a grpc.aio call, awaitable
            outcome = "OK"
        except grpc.aio.AioRpcError as error:
            outcome = error.code().name
        report(what, outcome, time.monotonic() - started)


async def _drain(call: AsyncIterator[bytes]) -> int:
    count = 0
    async for _ in call:
        count += 1
    return count


async def _each(items: list[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item
        await asyncio.sleep(0.02)
