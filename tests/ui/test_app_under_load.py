"""What keeps the app responsive under a busy service: decoding runs on its own thread, only
while the loop is idle, and the collector's passes skip what survived (frozen)."""

from __future__ import annotations

import asyncio
import gc
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from textual import events

from tests.ui.driving import SIZE, fed, frozen_clock, screen_text
from tests.ui.fakes import shop_session
from tui.model.store import Store, StoreChange
from tui.model.updates import Update
from tui.views import FRAMES_PER_SECOND
from tui.views.app import KEY_QUIET, PodtapApp
from tui.views.decoding import STARVED_AFTER, IdleGate

pytestmark = pytest.mark.timeout(30)


class ThreadNotingStore(Store):
    """A real store that notes which thread applied each batch, and whether the loop was
    parked in the gate meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.applied_on: list[int] = []
        self.gate_held: list[bool] = []
        self.gate: IdleGate | None = None

    def apply(self, updates: Sequence[Update]) -> StoreChange:
        self.applied_on.append(threading.get_ident())
        self.gate_held.append(self.gate is not None and self.gate.held)
        return super().apply(updates)


async def test_the_feed_is_decoded_on_its_own_thread_while_the_loop_waits() -> None:
    store = ThreadNotingStore()
    app = PodtapApp(shop_session(finite=True), clock=frozen_clock, store=store)
    loop = asyncio.get_running_loop()
    async with app.run_test(size=SIZE) as pilot:
        store.gate = app._gate
        await fed(app)
        await pilot.pause()
        assert isinstance(getattr(loop, "_selector", None), IdleGate)
        assert store.applied_on, "nothing was decoded"
        assert threading.get_ident() not in store.applied_on
        assert all(store.gate_held)
        assert "198.18.0.1:42000" in screen_text(app)
    # Gone with the app: the loop's own selector is back and the thread has ended.
    assert isinstance(getattr(loop, "_selector", None), selectors.BaseSelector)
    assert not isinstance(getattr(loop, "_selector", None), IdleGate)
    assert app.decoding is not None
    assert not app.decoding.thread.is_alive()


async def test_what_survives_is_frozen_while_the_app_runs_and_thawed_after() -> None:
    thresholds = gc.get_threshold()
    app = PodtapApp(shop_session(finite=True), clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        app.collector.interval = 0.0  # the next stretch of decoding, or tend, freezes
        app.collector.tend()
        await pilot.pause()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] > thresholds[0]
        exchange = next(conn for conn in app.store.connections.values() if conn.exchanges)
        frozen = exchange.exchanges[0]
        assert gc.is_tracked(frozen)
        assert not any(obj is frozen for obj in gc.get_objects())
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


def _enter_once(gate: IdleGate) -> tuple[threading.Thread, threading.Event]:
    """A thread that enters the gate once, as the decoding does, and sets the event inside."""
    entered = threading.Event()

    def holder() -> None:
        if gate.enter():
            entered.set()
            gate.leave()

    thread = threading.Thread(target=holder)
    thread.start()
    return thread, entered


def test_the_gate_lets_a_thread_in_only_while_the_loop_waits() -> None:
    gate = IdleGate(selectors.DefaultSelector())
    reader, writer = socket.socketpair()
    gate.register(reader, selectors.EVENT_READ)
    entered = threading.Event()
    saw_loop_want_back = threading.Event()
    order: list[str] = []

    def holder() -> None:
        assert gate.enter()
        entered.set()
        writer.send(b"x")  # wakes the selector: the loop now wants the gate back
        while not gate.loop_wants_back:
            threading.Event().wait(0.001)
        saw_loop_want_back.set()
        order.append("holder left")
        gate.leave()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        # A busy loop polls without a timeout: the gate stays shut.
        assert gate.select(0) == []
        assert not entered.wait(0.1)
        ready = gate.select(5.0)
        order.append("loop woke")
        assert [key.fileobj for key, _ in ready] == [reader]
        assert entered.is_set()
        assert saw_loop_want_back.is_set()
        assert order == ["holder left", "loop woke"]
        # Shut: nobody enters any more.
        gate.shut()
        assert not gate.enter()
    finally:
        thread.join(5)
        gate.close()
        reader.close()
        writer.close()


def test_the_gate_stays_shut_while_a_key_is_answered() -> None:
    gate = IdleGate(selectors.DefaultSelector())
    gate.shut_for(60.0)
    thread, entered = _enter_once(gate)
    try:
        assert gate.select(0.05) == []  # the loop waited, idle, but a key is being answered
        assert not entered.is_set()
        gate.shut_for(0.0)
        for _ in range(100):  # open again: the holder goes in, and the loop waits for it
            gate.select(0.05)
            if entered.is_set():
                break
        assert entered.is_set()
    finally:
        gate.shut()
        thread.join(5)
        gate.close()


def test_a_busy_loop_lends_a_slice_to_decoding_that_waited_too_long() -> None:
    gate = IdleGate(selectors.DefaultSelector())
    began = time.monotonic()
    thread, entered = _enter_once(gate)
    try:
        # The loop never waits: it only polls between ready callbacks.
        while not entered.is_set() and time.monotonic() - began < 10:
            gate.select(0)
        assert entered.is_set()
        assert time.monotonic() - began >= STARVED_AFTER
    finally:
        gate.shut()
        thread.join(5)
        gate.close()


def _frame_rate_after_importing_the_app(environment: dict[str, str]) -> str:
    code = "import tui.views.app, textual.constants; print(textual.constants.MAX_FPS)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_frames_are_drawn_at_twice_textuals_default_rate_unless_the_user_chose() -> None:
    # A keystroke's frame waits for the screen's update timer: at 60 frames a second that
    # wait alone can be 33 ms, at the rate podtap sets at most half that.
    environment = {k: v for k, v in os.environ.items() if k != "TEXTUAL_FPS"}
    assert _frame_rate_after_importing_the_app(environment) == str(FRAMES_PER_SECOND)
    assert _frame_rate_after_importing_the_app({**environment, "TEXTUAL_FPS": "30"}) == "30"


async def test_a_key_shuts_the_gate_as_soon_as_it_is_queued() -> None:
    # Before its turn comes, the loop may poll between other callbacks and lend that time to
    # decoding: a key already queued must stop that.
    app = PodtapApp(shop_session(finite=True), clock=frozen_clock)
    async with app.run_test(size=SIZE):
        await fed(app)
        gate = app._gate
        assert gate is not None
        queued_at = time.monotonic()
        app.post_message(events.Key("x", "x"))
        assert gate._shut_until >= queued_at + KEY_QUIET * 0.9  # no await: not handled yet


class TimeoutsNoted(selectors.DefaultSelector):
    """A real selector that notes the timeout of every wait."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.timeouts.append(timeout)
        return super().select(timeout)


def test_a_busy_loop_lends_nothing_while_input_waits() -> None:
    selector = TimeoutsNoted()
    gate = IdleGate(selector)
    keys, typed = socket.socketpair()
    gate.register(keys, selectors.EVENT_READ)
    thread, entered = _enter_once(gate)
    try:
        time.sleep(STARVED_AFTER * 1.5)  # the decoding has waited long enough for a slice
        typed.send(b"j")
        for _ in range(20):
            assert [key.fileobj for key, _ in gate.select(0)] == [keys]
        assert all(timeout == 0 for timeout in selector.timeouts)  # no slice was lent
        keys.recv(1)  # read: the next poll finds nothing waiting, and lends
        while not entered.is_set():
            gate.select(0)
        assert any(timeout for timeout in selector.timeouts)
    finally:
        gate.shut()
        thread.join(5)
        gate.close()
        keys.close()
        typed.close()
