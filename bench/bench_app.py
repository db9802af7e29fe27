"""The app under load: a session feeding 5,000 HTTP exchanges/s while keys are pressed.

Prints keystroke-to-screen latency (from the moment a key is due, pressed by a thread of its
own at random gaps, 250 ms on average, as a terminal's input thread would, to the first frame
drawn after its action ran; goal p95 < 50 ms, max < 150 ms), the slowest keys, what was decoded,
the garbage collector's longest passes, the heap's growth in memory blocks (what decides when
the collector sweeps) and the process's RSS. For the five slowest keys it prints
what the machine did meanwhile, from the kernel's counters: how long the loop's thread waited
for a CPU, what the hypervisor took, major page faults (a stall of the machine is not a stall
of the app).

    .venv/bin/python bench/bench_app.py [--seconds 60] [--rate 5000] [--prefill 0]

``--prefill N`` decodes N exchanges into the store before the app starts, so that a run at
``--prefill 100000`` measures the store at its exchange cap, evicting all along.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import random
import resource
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# First, as in the app: importing the views sets Textual's frame rate, which Textual reads once,
# when it is first imported.
import tui.views  # noqa: E402, F401

# isort: split
from rich.console import RenderableType  # noqa: E402
from textual import events  # noqa: E402
from textual.screen import Screen  # noqa: E402

from agent.events import ConnectionClosed, ConnectionOpened, DataReceived, Hello  # noqa: E402
from tui.model.store import Store  # noqa: E402
from tui.model.updates import AgentEvent, SourceStatus, Update  # noqa: E402
from tui.views.app import PodtapApp  # noqa: E402

SOURCE = "local"
TICK = 0.05
KEY_INTERVAL = 0.25
"""Seconds between two keys, on average."""
KEY_GAPS_SEED = 13
KEYS = [
    "down",
    "down",
    "j",
    "up",
    "k",
    "r",
    "r",
    "s",
    "s",
    "enter",
    "escape",
    "H",
    "H",
    "space",
    "space",
    "end",
    "home",
]
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
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
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
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def _open(self, now: float, out: list[Update]) -> None:
        conn = self.next_conn
        self.next_conn += 1
        self.live.append(conn)
        out.append(
            AgentEvent(
                SOURCE,
                ConnectionOpened(
                    ts=now,
                    conn=conn,
                    client="10.1.0.7",
                    client_port=30000 + conn % 30000,
                    server="10.1.0.9",
                    server_port=8080,
                ),
            )
        )

    def _batch(self, count: int, now: float) -> list[Update]:
        out: list[Update] = []
        while len(self.live) < self.pool:
            self._open(now, out)
        for _ in range(count):
            n = self.exchanges
            self.exchanges += 1
            conn = self.live[n % len(self.live)]
            out.append(
                AgentEvent(
                    SOURCE, DataReceived(ts=now, conn=conn, direction="in", data=request_bytes(n))
                )
            )
            out.append(
                AgentEvent(
                    SOURCE, DataReceived(ts=now + 0.002, conn=conn, direction="out", data=RESPONSE)
                )
            )
            if n % 50 == 49:
                old = self.live.pop(0)
                out.append(AgentEvent(SOURCE, ConnectionClosed(ts=now, conn=old, reason="fin")))
                self._open(now, out)
        return out

    def prefill(self, store: Store, exchanges: int) -> None:
        while self.exchanges < exchanges:
            store.apply(self._batch(min(1000, exchanges - self.exchanges), time.time()))

    async def updates(self) -> AsyncIterator[Sequence[Update]]:
        start = time.monotonic()
        base = self.exchanges
        yield [
            SourceStatus(SOURCE, "live"),
            AgentEvent(
                SOURCE,
                Hello(
                    ts=time.time(),
                    protocol=1,
                    version="bench",
                    agent_id="bench",
                    target="bench",
                    ports=[8080],
                    interfaces=["eth0"],
                    oldest_seq=1,
                    next_seq=1,
                ),
            ),
        ]
        while (elapsed := time.monotonic() - start) < self.seconds:
            owed = int(elapsed * self.rate) - (self.exchanges - base)
            if owed > 0:
                yield self._batch(owed, time.time())
            await asyncio.sleep(TICK)


class MeasuredApp(PodtapApp):
    """Notes, for every key pressed, when its action has run and when the next frame is drawn
    after it."""

    ready = asyncio.Event()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pressed: collections.deque[Press] = collections.deque()
        """Keys sent whose action has not run yet, oldest first (appended by the typist)."""
        self.acted: list[Press] = []
        """Keys whose action has run, waiting for the frame that shows it."""
        self.measured: list[Measured] = []
        self.loop_thread = threading.get_native_id()

    async def run_action(
        self, action: Any, default_namespace: Any = None, namespaces: Any = None
    ) -> bool:
        result = await super().run_action(action, default_namespace, namespaces)
        if self.pressed:
            self.acted.append(self.pressed.popleft())
        return result

    def on_ready(self) -> None:
        super().on_ready()
        self.ready.set()

    def _display(self, screen: Screen[Any], renderable: RenderableType | None) -> None:
        super()._display(screen, renderable)
        if renderable is not None and self.acted:
            now, cpu = time.perf_counter(), time.thread_time()
            machine = MachineCounters.read(self.loop_thread)
            for press in self.acted:
                self.measured.append(
                    Measured(
                        press,
                        (now - press.at) * 1000,
                        (cpu - press.loop_cpu) * 1000,
                        machine - press.machine,
                    )
                )
            self.acted.clear()


class MachineCounters(NamedTuple):
    """What the machine did to the loop thread, from the kernel's counters: the seconds it was
    ready to run but waited for a CPU, the seconds the hypervisor took from this machine's CPUs
    (all of them: it is counted machine-wide), and the process's major page faults. A key that
    waits while these grow waited for the machine, not for the app."""

    waited_for_cpu: float
    stolen: float
    major_faults: int

    @classmethod
    def read(cls, thread: int) -> MachineCounters:
        with open(f"/proc/self/task/{thread}/schedstat") as schedstat:
            waited_ns = int(schedstat.read().split()[1])
        with open("/proc/stat") as stat:
            stolen_ticks = int(stat.readline().split()[8])
        with open("/proc/self/stat") as process:
            # The fields after the command's closing parenthesis: majflt is the tenth.
            major_faults = int(process.read().rsplit(")", 1)[1].split()[9])
        return cls(waited_ns / 1e9, stolen_ticks / os.sysconf("SC_CLK_TCK"), major_faults)

    def __sub__(self, earlier: MachineCounters) -> MachineCounters:
        return MachineCounters(
            self.waited_for_cpu - earlier.waited_for_cpu,
            self.stolen - earlier.stolen,
            self.major_faults - earlier.major_faults,
        )


@dataclass(frozen=True)
class Press:
    key: str
    at: float
    loop_cpu: float
    """The loop thread's CPU time when the key was sent."""
    machine: MachineCounters


@dataclass(frozen=True)
class Measured:
    press: Press
    ms: float
    """From the press to the frame."""
    loop_cpu_ms: float
    """The loop thread's CPU meanwhile."""
    machine: MachineCounters
    """What the machine did meanwhile."""


class Typist(threading.Thread):
    """Presses keys from its own thread, as a terminal's input thread does: a key pressed
    while the loop is busy (a collector pass, a long redraw) waits for it, and that wait is
    part of what the key measures. Sending keys from the loop itself, one after the frame of
    the last, would never press one during a stall.

    The gaps between keys are random (a quarter of a second on average, the same sequence in
    every run): keys at a steady pace fall into step with the app's own periodic work (its
    collector freezes every half second) and can miss a stall every time, as they once did.
    And each key counts from when it was due: this thread needs the interpreter's lock to send
    it, so a stall that holds the lock would otherwise delay the press and hide itself."""

    def __init__(self, app: MeasuredApp, loop_thread: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.app = app
        self.loop_clock = time.pthread_getcpuclockid(loop_thread)
        self.seconds = seconds
        self.sent = 0
        self.gaps = random.Random(KEY_GAPS_SEED)

    def run(self) -> None:
        driver = self.app._driver
        assert driver is not None
        started = time.perf_counter()
        due = started
        while time.perf_counter() - started < self.seconds:
            key = KEYS[self.sent % len(KEYS)]
            char = {"space": " ", "j": "j", "k": "k", "r": "r", "s": "s", "H": "H"}.get(key)
            loop_cpu = time.clock_gettime(self.loop_clock)
            machine = MachineCounters.read(self.app.loop_thread)
            # The key counts from when it was due, not from when this thread got to send it: a
            # stall that holds the interpreter's lock holds this thread too, and a user's key
            # would have been pressed all the same.
            self.app.pressed.append(Press(key, due, loop_cpu, machine))
            driver.send_message(events.Key(key, char))
            self.sent += 1
            due += self.gaps.uniform(0.5, 1.5) * KEY_INTERVAL
            time.sleep(max(0.0, due - time.perf_counter()))


class CollectorPasses:
    """The garbage collector's passes during the run, timed."""

    def __init__(self) -> None:
        self.durations: list[tuple[float, int]] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.durations.append(((time.perf_counter() - self._began) * 1000, info["generation"]))

    def summary(self) -> str:
        if not self.durations:
            return "no pass"
        longest = sorted(self.durations, reverse=True)[:3]
        total = sum(ms for ms, _ in self.durations)
        shown = ", ".join(f"{ms:.0f} ms (gen {gen})" for ms, gen in longest)
        per_generation = ", ".join(
            f"gen {gen} {sum(1 for _, g in self.durations if g == gen):,} passes "
            f"{sum(ms for ms, g in self.durations if g == gen) / 1000:.1f} s"
            for gen in (0, 1, 2)
        )
        return (
            f"{len(self.durations):,} passes, {total / 1000:.1f} s in all ({per_generation}), "
            f"longest {shown}"
        )


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run(seconds: float, rate: int, prefill: int) -> None:
    session = LoadSession(rate, seconds)
    store = Store()
    if prefill:
        began = time.monotonic()
        session.prefill(store, prefill)
        print(f"prefill: {prefill:,} exchanges in {time.monotonic() - began:.1f} s")
    app = MeasuredApp(session, store=store)
    passes = CollectorPasses()
    gc.callbacks.append(passes)
    async with app.run_test(size=(160, 45)):
        # Keys start once the app is ready: the pass over a prefilled store at start-up is
        # the benchmark's own set-up, not something a user meets.
        await app.ready.wait()
        await asyncio.sleep(0.5)
        started = time.monotonic()
        cpu_started = time.process_time()
        typist = Typist(app, threading.get_ident(), seconds)
        passes.durations.clear()  # the pass over a prefilled store at start-up is set-up too
        blocks_started = sys.getallocatedblocks()
        typist.start()
        # The RSS ten times over the run: flat once the store is at its caps, or it leaks.
        rss_over_run: list[float] = []
        while typist.is_alive():
            rss_over_run.append(rss_mb())
            await asyncio.to_thread(typist.join, seconds / 10)
        elapsed = time.monotonic() - started
        cores = (time.process_time() - cpu_started) / elapsed
        await asyncio.sleep(2.0)  # the frames of the last keys
        gc.callbacks.remove(passes)
        # What was frozen and has become cyclic garbage since: never collected while the app
        # runs (the price of freezing survivors).
        gc.collect()
        blocks_ended = sys.getallocatedblocks()
        gc.unfreeze()
        if os.environ.get("BENCH_GARBAGE_TYPES"):
            gc.set_debug(gc.DEBUG_SAVEALL)
        frozen_garbage = gc.collect()
        if gc.garbage:
            print(
                collections.Counter(type(o).__qualname__ for o in gc.garbage).most_common(8),
                sum(sys.getsizeof(o) for o in gc.garbage) // 1024,
                "KiB",
            )
            gc.garbage.clear()
            gc.set_debug(0)
            gc.collect()  # what was saved is still in its cycles: free it, for the heap's count
        garbage_blocks = blocks_ended - sys.getallocatedblocks()
        offered = session.exchanges - prefill
        decoded = store.exchange_count + store.dropped_exchanges - prefill
        print(
            f"feed: {offered:,} exchanges offered in {elapsed:.1f} s ({rate:,}/s asked), "
            f"{decoded:,} decoded = {decoded / elapsed:,.0f}/s, "
            f"{app.events_seen:,} events applied"
        )
        print(
            f"store: {len(store.connections):,} connections, {store.exchange_count:,} "
            f"exchanges kept, {store.dropped_connections:,} connections and "
            f"{store.dropped_exchanges:,} exchanges evicted by the caps"
        )
    latencies = sorted(m.ms for m in app.measured)
    cpu_costs = sorted(m.loop_cpu_ms for m in app.measured)
    by_key: dict[str, list[float]] = {}
    for m in app.measured:
        by_key.setdefault(m.press.key, []).append(m.ms)
    p50 = statistics.median(latencies)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(
        f"keystroke to screen: {typist.sent} keys pressed {KEY_INTERVAL * 1000:.0f} ms apart "
        f"on average from their own thread, {len(latencies)} drawn: p50 {p50:.1f} ms, "
        f"p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms"
    )
    print(
        f"loop CPU per keystroke: p50 {statistics.median(cpu_costs):.1f} ms, "
        f"p95 {cpu_costs[int(len(cpu_costs) * 0.95) - 1]:.1f} ms; "
        f"the process used {cores:.2f} cores"
    )
    slowest = sorted(by_key.items(), key=lambda item: -statistics.median(item[1]))[:4]
    print(
        "slowest keys (median, max): "
        + ", ".join(f"{key} {statistics.median(ms):.0f}/{max(ms):.0f} ms" for key, ms in slowest)
    )
    print("the five slowest keys, and what the machine did meanwhile:")
    for m in sorted(app.measured, key=lambda m: -m.ms)[:5]:
        print(
            f"  {m.press.key} {m.ms:.0f} ms: loop CPU {m.loop_cpu_ms:.0f} ms, the loop waited "
            f"{m.machine.waited_for_cpu * 1000:.0f} ms for a CPU, the hypervisor took "
            f"{m.machine.stolen * 1000:.0f} ms (of all CPUs), {m.machine.major_faults} major "
            "page faults"
        )
    print(
        f"collector: {passes.summary()}; {frozen_garbage:,} objects of cyclic garbage were frozen"
    )
    gained = blocks_ended - blocks_started
    print(
        f"heap: {gained:+,} blocks while keys were pressed ({gained / elapsed:+,.0f}/s), "
        f"{garbage_blocks:,} of them frozen garbage; {app.collector.sweeps} sweeps "
        f"(one is due once the heap has gained {app.collector.sweep_after_growth:,})"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"RSS: {rss_mb():.0f} MB now, {peak:.0f} MB peak; over the run: "
        + " ".join(f"{mb:.0f}" for mb in rss_over_run)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=5000, help="exchanges per second")
    parser.add_argument(
        "--prefill",
        type=int,
        default=0,
        help="exchanges decoded into the store before the app starts",
    )
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.rate, args.prefill))


if __name__ == "__main__":
    main()
