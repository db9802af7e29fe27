"""The app under load: a session feeding 5,000 HTTP exchanges/s while keys are pressed.

Prints keystroke-to-screen latency (from the key event entering the app to the first frame
drawn after its action ran; goal p95 < 50 ms), what was ingested, and the process's RSS.

    .venv/bin/python bench/bench_app.py [--seconds 60] [--rate 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import RenderableType  # noqa: E402
from textual import events  # noqa: E402
from textual.screen import Screen  # noqa: E402

from agent.events import ConnectionClosed, ConnectionOpened, DataReceived, Hello  # noqa: E402
from tui.model.updates import AgentEvent, SourceStatus, Update  # noqa: E402
from tui.views.app import PodtapApp  # noqa: E402

SOURCE = "local"
TICK = 0.05
KEYS = ["down", "down", "j", "up", "k", "r", "r", "s", "s", "enter", "escape", "H", "H",
        "space", "space", "end", "home"]
USERS = ("alice", "bob", "carol", "dave", "erin", "frank")


def request_bytes(n: int) -> bytes:
    user = USERS[n % len(USERS)]
    return (
        f"GET /api/users/{user}/orders?page={n % 50} HTTP/1.1\r\nHost: shop:8080\r\n"
        f"User-Agent: okhttp/4.12.0\r\nAccept: application/json\r\nx-user-id: {user}\r\n"
        f"x-tenant: t{n % 7}\r\nx-request-id: {n:012d}\r\nAuthorization: Bearer tok{n % 13}\r\n"
        "\r\n"
    ).encode()


BODY = b'{"orders":[{"id":1,"total":12.5},{"id":2,"total":3.25}],"page":1}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


class LoadSession:
    """Keep-alive connections (a new one replaces the oldest every 50 exchanges), paced by the
    wall clock: every tick yields the exchanges the rate owes, so a slow consumer gets bigger
    batches rather than a slower feed."""

    description = "bench (synthetic load)"

    def __init__(self, rate: int, seconds: float, pool: int = 200) -> None:
        self.rate = rate
        self.seconds = seconds
        self.pool = pool
        self.exchanges = 0
        self.next_conn = 0
        self.live: list[int] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def _open(self, now: float, out: list[Update]) -> None:
        conn = self.next_conn
        self.next_conn += 1
        self.live.append(conn)
        out.append(AgentEvent(SOURCE, ConnectionOpened(
            ts=now, conn=conn, client="10.1.0.7", client_port=30000 + conn % 30000,
            server="10.1.0.9", server_port=8080)))

    def _batch(self, count: int, now: float) -> list[Update]:
        out: list[Update] = []
        while len(self.live) < self.pool:
            self._open(now, out)
        for _ in range(count):
            n = self.exchanges
            self.exchanges += 1
            conn = self.live[n % len(self.live)]
            out.append(AgentEvent(SOURCE, DataReceived(ts=now, conn=conn, direction="in",
                                                       data=request_bytes(n))))
            out.append(AgentEvent(SOURCE, DataReceived(ts=now + 0.002, conn=conn,
                                                       direction="out", data=RESPONSE)))
            if n % 50 == 49:
                old = self.live.pop(0)
                out.append(AgentEvent(SOURCE, ConnectionClosed(ts=now, conn=old, reason="fin")))
                self._open(now, out)
        return out

    async def updates(self) -> AsyncIterator[Sequence[Update]]:
        start = time.monotonic()
        yield [SourceStatus(SOURCE, "live"), AgentEvent(SOURCE, Hello(
            ts=time.time(), protocol=1, version="bench", agent_id="bench", target="bench",
            ports=[8080], interfaces=["eth0"], oldest_seq=1, next_seq=1))]
        while (elapsed := time.monotonic() - start) < self.seconds:
            owed = int(elapsed * self.rate) - self.exchanges
            if owed > 0:
                yield self._batch(owed, time.time())
            await asyncio.sleep(TICK)


class MeasuredApp(PodtapApp):
    """Notes when a key's action has run and when the next frame is drawn after it."""

    action_done: float | None = None
    frame_after_action: float | None = None
    framed = asyncio.Event()

    async def run_action(
        self, action: Any, default_namespace: Any = None, namespaces: Any = None
    ) -> bool:
        result = await super().run_action(action, default_namespace, namespaces)
        if self.action_done is None:
            self.action_done = time.perf_counter()
        return result

    def _display(self, screen: Screen[Any], renderable: RenderableType | None) -> None:
        super()._display(screen, renderable)
        if renderable is not None and self.action_done is not None \
                and self.frame_after_action is None:
            self.frame_after_action = time.perf_counter()
            self.framed.set()


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def press(app: MeasuredApp, key: str) -> float | None:
    """Send one key as the terminal would; the ms until the frame that shows its effect."""
    app.action_done = app.frame_after_action = None
    app.framed.clear()
    char = {"space": " ", "j": "j", "k": "k", "r": "r", "s": "s", "H": "H"}.get(key)
    assert app._driver is not None
    start = time.perf_counter()
    app._driver.send_message(events.Key(key, char))
    try:
        await asyncio.wait_for(app.framed.wait(), 2.0)
    except TimeoutError:
        return None
    assert app.frame_after_action is not None
    return (app.frame_after_action - start) * 1000


async def run(seconds: float, rate: int) -> None:
    session = LoadSession(rate, seconds)
    app = MeasuredApp(session)
    latencies: list[float] = []
    missed = 0
    async with app.run_test(size=(160, 45)):
        started = time.monotonic()
        index = 0
        while time.monotonic() - started < seconds:
            await asyncio.sleep(0.2)
            latency = await press(app, KEYS[index % len(KEYS)])
            index += 1
            if latency is None:
                missed += 1
            else:
                latencies.append(latency)
        elapsed = time.monotonic() - started
        store = app.store
        offered = session.exchanges
        decoded = store.exchange_count + store.dropped_exchanges
        print(f"feed: {offered:,} exchanges offered in {elapsed:.1f} s ({rate:,}/s asked), "
              f"{decoded:,} decoded = {decoded / elapsed:,.0f}/s, "
              f"{app.events_seen:,} events applied")
        print(f"store: {len(store.connections):,} connections, {store.exchange_count:,} "
              f"exchanges kept, {store.dropped_connections:,} connections and "
              f"{store.dropped_exchanges:,} exchanges evicted by the caps")
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(f"keystroke to screen: {len(latencies)} keys, p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"max {latencies[-1]:.1f} ms, {missed} without a frame within 2 s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RSS: {rss_mb():.0f} MB now, {peak:.0f} MB peak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=5000, help="exchanges per second")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.rate))


if __name__ == "__main__":
    main()
