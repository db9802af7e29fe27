"""The demo's clients of the protocols between services: a warehouse job calling the gRPC
inventory, a catalog sync over HTTP/2 cleartext (alternately upgraded from HTTP/1.1 and with
prior knowledge), and two support agents in the WebSocket chat. Each reports what it did as a
traffic :class:`~tui.demo.traffic.ClientCall`, at a few calls per second at most.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import grpc.aio
from websockets.exceptions import WebSocketException

from tui.demo import chat, h2c
from tui.demo.inventory import WarehouseClient
from tui.demo.outcomes import ClientCall


@dataclass(frozen=True)
class ServicePorts:
    grpc: int = 50051
    h2c: int = 8081
    chat: int = 8765


class ServiceClients:
    def __init__(
        self,
        address: str,
        ports: ServicePorts,
        on_call: Callable[[ClientCall], None],
        rng: random.Random,
        pace: float,
        numbers: Iterator[int],
    ) -> None:
        self.address = address
        self.ports = ports
        self.on_call = on_call
        self.rng = rng
        self.pace = pace
        self._numbers = numbers

    def clients(self) -> list[Coroutine[Any, Any, None]]:
        return [self._warehouse(), self._catalog(), self._chatter("ana"), self._chatter("raj")]

    async def _pause(self, low: float, high: float) -> None:
        await asyncio.sleep(self.rng.uniform(low, high) * self.pace)

    def _report(self, who: str, kind: str, number: int) -> Callable[[str, str, float], None]:
        def report(what: str, outcome: str, elapsed: float) -> None:
            self.on_call(ClientCall(who, kind, what, outcome, elapsed, number))

        return report

    async def _warehouse(self) -> None:
        client = WarehouseClient(self.address, self.ports.grpc, self.rng)
        await asyncio.sleep(0.4)
        while True:
            number = next(self._numbers)
            try:
                async with grpc.aio.insecure_channel(client.target) as channel:
                    for _ in range(self.rng.randint(2, 5)):
                        report = self._report("warehouse", "grpc", number)
                        await client.round(channel, report)
                        await self._pause(1.0, 2.5)
            except grpc.aio.AioRpcError as error:
                self.on_call(
                    ClientCall(
                        "warehouse", "grpc", "channel", f"error: {error.code().name}", 0.0, number
                    )
                )
                await self._pause(1.0, 2.0)

    async def _catalog(self) -> None:
        await asyncio.sleep(0.6)
        for upgrade in itertools.cycle([True, False]):
            number = next(self._numbers)
            client = h2c.H2cClient(self.address, self.ports.h2c, upgrade)
            kind = "h2c" if upgrade else "h2"
            paths = h2c.catalog_paths(self.rng, self.rng.randint(3, 8))
            report = self._report("catalog", kind, number)
            try:
                started = time.monotonic()
                status = await client.open(paths[0])
                if status is not None:
                    upgraded = f"GET {paths[0]} (upgrade)"
                    report(upgraded, str(status), time.monotonic() - started)
                for path in paths[1:]:
                    started = time.monotonic()
                    status = await client.get(path)
                    report(f"GET {path}", str(status), time.monotonic() - started)
                    await self._pause(0.5, 1.5)
            except (OSError, ValueError, asyncio.IncompleteReadError) as error:
                self.on_call(ClientCall("catalog", kind, "session", f"error: {error}", 0.0, number))
                await self._pause(1.0, 2.0)
            finally:
                await client.close()

    async def _chatter(self, who: str) -> None:
        await asyncio.sleep(0.8 if who == "ana" else 1.6)
        while True:
            number = next(self._numbers)
            report = self._report(who, "ws", number)
            try:
                await chat.session(
                    self.address, self.ports.chat, who, self.rng, report, self._pause
                )
            except (OSError, WebSocketException, TimeoutError) as error:
                self.on_call(ClientCall(who, "ws", "session", f"error: {error}", 0.0, number))
            await self._pause(1.0, 3.0)
