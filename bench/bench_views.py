"""The inspector's views with 100,000 exchanges in the store: time to first frame.

Measures, from the key event entering the app to the first frame drawn after its action ran
(medians over several presses; goal < 100 ms for opening a view, < 50 ms for a keystroke in
one):

- ``tab`` to the requests view (and back), ``down`` in it;
- ``e`` to the endpoints view, ``>`` to sort it, ``esc`` back;
- ``n`` for find across bodies: the text is in one old body only, so the key scans every
  exchange from the newest to it (a slice at a time: the first frame shows how far it got;
  the time until the match is shown is printed too), once the texts find looks through were
  made while the find text was typed (how long that took is printed);
- a 10 MB body: opening it (``up`` onto it: the first time, its text masked and laid out;
  again, from the pane's cache) and ``pagedown`` / ``end`` in it (with the find's marks);
- as the reference of the same run: ``down`` in the connections list.

    .venv/bin/python bench/bench_views.py [--exchanges 100000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# First, as in the app: importing the views sets Textual's frame rate, which Textual reads once,
# when it is first imported.
import tui.views  # noqa: E402, F401

# isort: split
from rich.console import RenderableType  # noqa: E402
from textual import events  # noqa: E402
from textual.screen import Screen  # noqa: E402

from agent.events import ConnectionOpened, DataReceived, Hello  # noqa: E402
from tui.model.store import Store  # noqa: E402
from tui.model.updates import AgentEvent, SourceStatus, Update  # noqa: E402
from tui.views.app import PodtapApp  # noqa: E402

SOURCE = "local"
PER_CONNECTION = 100
ROUTES = 50
NEEDLE = "order 4711"
CHARS = {"space": " ", "greater_than_sign": ">", "less_than_sign": "<"}


def request_bytes(n: int) -> bytes:
    return (
        f"GET /api/r{n % ROUTES}/items/{n} HTTP/1.1\r\nHost: shop:8080\r\n"
        f"User-Agent: okhttp/4.12.0\r\nAccept: application/json\r\nx-user-id: u{n % 97}\r\n"
        f"x-request-id: {n:012d}\r\nAuthorization: Bearer tok{n % 13}\r\n\r\n"
    ).encode()


def response_bytes(body: bytes, status: int = 200) -> bytes:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def traffic(exchanges: int, big_body: bytes) -> list[Update]:
    """``exchanges`` GETs on keep-alive connections, one second of capture time per 1,000;
    the 11th carries the text to find, the newest the big body."""
    t0 = time.time() - exchanges / 1000
    body = b'{"items":[{"id":1,"total":12.5},{"id":2,"total":3.25}],"page":1}'
    out: list[Update] = [
        SourceStatus(SOURCE, "live"),
        AgentEvent(
            SOURCE,
            Hello(
                ts=t0,
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
    for n in range(exchanges):
        ts = t0 + n / 1000
        conn = n // PER_CONNECTION
        if n % PER_CONNECTION == 0:
            out.append(
                AgentEvent(
                    SOURCE,
                    ConnectionOpened(
                        ts=ts,
                        conn=conn,
                        client="10.1.0.7",
                        client_port=20000 + conn % 40000,
                        server="10.1.0.9",
                        server_port=8080,
                    ),
                )
            )
        this = body
        if n == 10:
            this = f'{{"note": "{NEEDLE}"}}'.encode()
        elif n == exchanges - 1:
            this = big_body
        out.append(
            AgentEvent(
                SOURCE, DataReceived(ts=ts, conn=conn, direction="in", data=request_bytes(n))
            )
        )
        out.append(
            AgentEvent(
                SOURCE,
                DataReceived(
                    ts=ts + 0.003,
                    conn=conn,
                    direction="out",
                    data=response_bytes(this, 500 if n % 37 == 0 else 200),
                ),
            )
        )
    return out


class FinishedSession:
    """Nothing more to deliver: the store is filled before the app starts."""

    description = "bench (100k exchanges)"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def updates(self) -> AsyncIterator[Sequence[Update]]:
        return
        yield


class FramedApp(PodtapApp):
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
        shown = renderable is not None and self.action_done is not None
        if shown and self.frame_after_action is None:
            self.frame_after_action = time.perf_counter()
            self.framed.set()


async def press(app: FramedApp, key: str) -> float:
    app.action_done = app.frame_after_action = None
    app.framed.clear()
    char = CHARS.get(key, key if len(key) == 1 else None)
    assert app._driver is not None
    start = time.perf_counter()
    app._driver.send_message(events.Key(key, char))
    await asyncio.wait_for(app.framed.wait(), 30.0)
    assert app.frame_after_action is not None
    return (app.frame_after_action - start) * 1000


async def run(exchanges: int, repeat: int) -> None:
    big = b'{"order": 1, "note": "' + b"x" * 60 + b'"}\n'
    big_body = big * (10_000_000 // len(big))
    store = Store(max_exchanges=exchanges, body_cap=len(big_body))
    app = FramedApp(FinishedSession(), store=store)
    began = time.perf_counter()
    updates = traffic(exchanges, big_body)
    for start in range(0, len(updates), 5000):
        app.apply(updates[start : start + 5000])
    print(
        f"store: {store.exchange_count:,} exchanges in {len(store.connections):,} "
        f"connections, {len(app.endpoints.endpoints)} endpoints "
        f"(filled in {time.perf_counter() - began:.1f} s)"
    )
    figures: dict[str, list[float]] = {}

    def note(name: str, ms: float) -> None:
        figures.setdefault(name, []).append(ms)

    async with app.run_test(size=(160, 45)) as pilot:
        await app.stream_finished.wait()
        await pilot.pause(0.5)
        main = app.main_screen
        for _ in range(repeat):
            note("down in connections (reference)", await press(app, "down"))
            note("tab: to the requests view", await press(app, "tab"))
            note("down in the requests view", await press(app, "down"))
            note("tab: back to connections", await press(app, "tab"))
            note("e: to the endpoints view", await press(app, "e"))
            note("> in the endpoints view", await press(app, "greater_than_sign"))
            note("esc: back from endpoints", await press(app, "escape"))
            await pilot.pause(0.1)
        # Find: from the newest request, n goes round to the 11th (the only one with it).
        await press(app, "tab")
        await press(app, "home")
        began = time.perf_counter()
        await pilot.press("f", *NEEDLE, "enter")
        # The texts find looks through are made while the find text is typed (a person takes
        # a second or two for it): wait until they are all made, as a person would have.
        while main._warming is not None:
            await pilot.pause(0.01)
        warmed = (time.perf_counter() - began) * 1000
        await pilot.pause(0.2)
        for _ in range(repeat):
            began = time.perf_counter()
            note("n: find across bodies, first frame", await press(app, "n"))
            while main._scan is not None:
                await pilot.pause(0.001)
            note("n: find across bodies, found", (time.perf_counter() - began) * 1000)
            target = main.selected_exchange
            assert target is not None
            assert target.response is not None
            assert NEEDLE.encode() in target.response.body
            await press(app, "home")
        # The 10 MB body: the newest exchange's response, opened for the first time (the
        # pane's rendered bodies forgotten) and again.
        for _ in range(repeat):
            await press(app, "down")
            main.detail._bodies.clear()
            note("up onto the 10 MB body, first time", await press(app, "up"))
            await press(app, "down")
            note("up onto the 10 MB body, again", await press(app, "up"))
            await press(app, "enter")
            note("pagedown in the 10 MB body", await press(app, "pagedown"))
            note("end of the 10 MB body", await press(app, "end"))
            await press(app, "escape")
        rows = main.detail.row_count
    reference = statistics.median(figures["down in connections (reference)"])
    print(f"time to first frame, median of {repeat} (ms; x = ratio to the reference):")
    for name, values in figures.items():
        median = statistics.median(values)
        print(
            f"  {name:<34} {median:8.1f} ms  x{median / reference:5.1f}   (max {max(values):.1f})"
        )
    print(f"10 MB body: {len(big_body):,} bytes shown as {rows:,} lines")
    print(f"find: the texts of {exchanges:,} exchanges made while typing in {warmed:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(run(args.exchanges, args.repeat))


if __name__ == "__main__":
    main()
