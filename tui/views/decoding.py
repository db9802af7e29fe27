"""Decoding off the UI loop: a thread applies the session's updates to the store, but only while
the event loop has nothing to do.

Decoding 5,000 exchanges a second takes most of a core. Done on the loop, in slices, it still
sat between every two steps of a keystroke's handling (a key, its action, its repaint are many
turns of the loop), and throttling it to leave room for keys made it fall behind. So it moves
to a thread, behind a gate on the loop's selector: the gate opens while the loop waits for I/O
or a timer, and closes as soon as the loop wakes. Whatever the app runs on the loop (keys,
actions, redraws, reading the store) never overlaps decoding, so the store needs no lock; and a
woken loop waits for at most one small chunk of updates, never for the backlog.

The thread shares the interpreter's lock with the loop, so the two together get one core at
most: what the gate buys is that the loop never waits for decoding, not more CPU.
"""

from __future__ import annotations

import asyncio
import selectors
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tui.model.store import Store, StoreChange
from tui.model.updates import AgentEvent, Update

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

CHUNK = 8
"""Updates applied between two looks at the gate (about half a millisecond of decoding)."""

SWITCH_INTERVAL = 0.001
"""Seconds the interpreter lets the decoding thread run before a woken loop gets its turn
(CPython's default, 5 ms, would be added to every keystroke)."""

STARVED_AFTER = 0.1
"""Seconds the decoding may wait for an idle loop before the loop, busy or not, lends it a
slice: on a starved machine the loop is never idle, and the feed must not stop for good."""

LENT_SLICE = 0.02
"""Seconds of a busy loop's time lent to starved decoding (less if input arrives: a key takes
the loop back after one chunk)."""

Applied = Callable[[StoreChange, int], None]
"""Told of each store change and of how many agent events made it (on the decoding thread,
while the loop is parked)."""


class IdleGate(selectors.BaseSelector):
    """The event loop's selector, wrapped: it lets one other thread in while the loop waits
    with a timeout (the loop is idle), and, once the loop wakes, waits for that thread to step
    out before handing the ready events back."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector
        self._condition = threading.Condition()
        self._loop_idle = False
        self._held = False
        self._closed = False
        self._shut_until = 0.0
        self._waiting_since: float | None = None
        self._lent = False
        self.wake_loop: Callable[[], None] = lambda: None
        """Wakes the loop from another thread (its slice lent to decoding is handed back early
        when the backlog runs out)."""
        self.loop_wants_back = False
        """Set when the loop woke while the gate is held: the holder should step out."""

    @property
    def held(self) -> bool:
        """Another thread is inside (the loop is parked in ``select``)."""
        return self._held

    # -- the loop's side -----------------------------------------------------------------

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        now = time.monotonic()
        shut_for = self._shut_until - now
        if timeout is not None and timeout <= 0:
            # A poll between two ready callbacks: the loop is busy, the gate stays shut, unless
            # the decoding has waited too long (and no key is being answered).
            waiting_since = self._waiting_since
            if shut_for > 0 or waiting_since is None or now - waiting_since < STARVED_AFTER:
                return self.selector.select(timeout)
            # Input already waiting (a key, not yet read) keeps the loop: the slice would
            # only end after the decoding's next step, which can be a collector pass.
            ready = self.selector.select(0)
            if ready:
                return ready
            timeout = LENT_SLICE
            self._lent = True
        elif shut_for > 0:
            # Answering a key: its action and repaint come first. Waking early is harmless:
            # the loop finds nothing to do and waits again, with the gate open.
            return self.selector.select(shut_for if timeout is None else min(timeout, shut_for))
        with self._condition:
            self._loop_idle = True
            self._condition.notify_all()
        try:
            return self.selector.select(timeout)
        finally:
            with self._condition:
                self._loop_idle = False
                self._lent = False
                self.loop_wants_back = True
                while self._held:
                    self._condition.wait()
                self.loop_wants_back = False

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self.selector.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self.selector.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self.selector.modify(fileobj, events, data)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self.selector.get_map()

    def close(self) -> None:
        self.shut()
        self.selector.close()

    def shut_for(self, seconds: float) -> None:
        """Keep the gate shut this long, even while the loop waits (from the loop's side)."""
        self._shut_until = time.monotonic() + seconds

    # -- the other thread's side ----------------------------------------------------------

    def enter(self) -> bool:
        """Wait until the loop is idle and hold the gate; False once the gate is shut."""
        with self._condition:
            self._waiting_since = time.monotonic()
            while not self._loop_idle and not self._closed:
                self._condition.wait()
            self._waiting_since = None
            if self._closed:
                return False
            self._held = True
            return True

    def leave(self) -> None:
        with self._condition:
            self._held = False
            lent = self._lent
            self._condition.notify_all()
        if lent:
            self.wake_loop()

    def shut(self) -> None:
        """Let no one in any more (whoever waits in ``enter`` gets False)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    # -- fitting it to a loop -------------------------------------------------------------

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop) -> IdleGate | None:
        """Wrap ``loop``'s selector; None when the loop has none (not a selector loop)."""
        selector = getattr(loop, "_selector", None)
        if isinstance(selector, IdleGate):  # left by an app that did not unmount: replaced
            selector.shut()
            selector = selector.selector
        if not isinstance(selector, selectors.BaseSelector):
            return None
        gate = cls(selector)

        def wake_loop() -> None:
            loop.call_soon_threadsafe(_nothing)

        gate.wake_loop = wake_loop
        setattr(loop, "_selector", gate)  # noqa: B010 - asyncio keeps it private
        return gate

    def uninstall(self, loop: asyncio.AbstractEventLoop) -> None:
        self.shut()
        if getattr(loop, "_selector", None) is self:
            setattr(loop, "_selector", self.selector)  # noqa: B010 - as in install


class DecodingThread:
    """Applies queued batches of updates to ``store`` on its own thread, through ``gate``.

    ``tend`` is called after each stretch of decoding (the collector's policy runs there, on
    the loop's idle time too). A failure stops the thread and is kept in ``failure``, for the
    loop to raise."""

    def __init__(
        self,
        store: Store,
        gate: IdleGate,
        applied: Applied,
        tend: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.gate = gate
        self.applied = applied
        self.tend = tend
        self.failure: BaseException | None = None
        self._batches: deque[Sequence[Update]] = deque()
        self._offset = 0
        """Updates of the first batch already taken."""
        self._queued = 0
        self._wake = threading.Condition()
        self._stopped = False
        self._switch_interval = sys.getswitchinterval()
        self.thread = threading.Thread(target=self._run, name="podtap-decoding", daemon=True)

    @property
    def backlog(self) -> int:
        """Updates queued or being applied."""
        return self._queued

    def start(self) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        self.gate.shut()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join()
        sys.setswitchinterval(self._switch_interval)

    def put(self, batch: Sequence[Update]) -> None:
        if not batch:
            return
        with self._wake:
            self._batches.append(batch)
            self._queued += len(batch)
            self._wake.notify()

    def _run(self) -> None:
        try:
            while self._next_stretch():
                pass
        except BaseException as error:  # the loop raises it: this thread has no one to tell
            self.failure = error

    def _next_stretch(self) -> bool:
        """Wait for work and for the loop to idle, then decode until the loop wants back."""
        with self._wake:
            while not self._batches and not self._stopped:
                self._wake.wait()
            if self._stopped:
                return False
        if not self.gate.enter():
            return False
        try:
            # First, while the loop has just gone idle: a freeze that waited for a quiet
            # moment would never get one under a feed that outruns the decoding.
            self.tend()
            while not self.gate.loop_wants_back and not self._stopped:
                if not self._apply_chunk():
                    break
        finally:
            self.gate.leave()
        return True

    def _apply_chunk(self) -> bool:
        with self._wake:
            if not self._batches:
                return False
            batch = self._batches[0]
            start = self._offset
            chunk = batch[start : start + CHUNK]
            self._offset = start + len(chunk)
            if self._offset >= len(batch):
                self._batches.popleft()
                self._offset = 0
        change = self.store.apply(chunk)
        self.applied(change, sum(1 for update in chunk if isinstance(update, AgentEvent)))
        with self._wake:
            self._queued -= len(chunk)
        return True


def _nothing() -> None:
    """Scheduled only to wake the loop."""
