"""The podtap app: it hands a session's updates to the decoding thread, which applies them to
the store while the loop is idle, and redraws, at most ten times a second, only what changed."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen

from agent.errors import UserError
from tui.model.endpoints import EndpointTable
from tui.model.flows import ConnectionKey
from tui.model.store import Store, StoreChange
from tui.model.terminal_text import one_line, terminal_safe
from tui.model.updates import AgentEvent, Update
from tui.model.wording import counted
from tui.sources.session import Session
from tui.views.collector import FrozenSurvivors
from tui.views.decoding import DecodingThread, IdleGate
from tui.views.pending import PendingChanges, ShowsStoreChanges
from tui.views.rate import RateMeter
from tui.views.screens.help import HelpScreen, bindings_of
from tui.views.screens.main import MainScreen

Clock = Callable[[], float]

REFRESH_INTERVAL = 0.1
"""Seconds between redraws: bursts of updates in between are merged into one."""

INGEST_CHUNK = 32
"""Updates applied in one go when the loop itself must decode (it has no selector to gate)."""

MAX_BACKLOG = 20_000
"""Updates waiting for the decoding thread before the feed stops being read: past it, the
agent's journal, not this process's memory, absorbs what the decoding has not caught up with."""

BACKLOG_POLL = 0.02
"""Seconds between two looks at the decoding backlog while it is full or being drained."""

KEY_QUIET = 0.05
"""After a keystroke, decoding and data redraws step aside this long: its answer is drawn
first."""

NOTE_SECONDS = 6.0
"""How long what the session says in passing (a pod that joined, a guessed container, a
recording cut short) stays on screen."""

NOTES_AT_ONCE = 3
"""Notes shown one by one from a single redraw; the rest are counted in one more (a rollout of
a hundred replicas says a hundred times that a pod joined)."""


class PodtapApp(App[None]):
    # Absolute, so that subclasses defined elsewhere (benchmarks) find it too.
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    BINDINGS: ClassVar[list[BindingType]] = [
        # ctrl+c too, as in dump and record and most terminal programs (not Textual's hint to
        # press ctrl+q instead).
        Binding(
            "q,ctrl+c",
            "quit",
            "Quit",
            key_display="q",
            id="podtap.quit",
            tooltip="Quit podtap (agents stop)",
        ),
        Binding(
            "question_mark",
            "help",
            "Help",
            key_display="?",
            id="podtap.help",
            tooltip="Every key and filter operator",
        ),
    ]

    def __init__(
        self,
        session: Session,
        *,
        title: str | None = None,
        clock: Clock = time.time,
        store: Store | None = None,
    ) -> None:
        super().__init__()
        self.session = session
        self.clock = clock
        self.store = store if store is not None else Store()
        self.title = title or session.description
        self.sub_title = session.description
        self.endpoints = EndpointTable()
        self.main_screen = MainScreen(
            self.store,
            clock,
            session.description,
            endpoints=self.endpoints,
            endpoints_now=self._now,
        )
        self.pending = PendingChanges()
        self.rate = RateMeter()
        self.events_seen = 0
        self.collector = FrozenSurvivors()
        self.decoding: DecodingThread | None = None
        """Decodes the feed off the loop; None until the app is ready (and on a loop that has
        no selector to gate, where the loop decodes itself)."""
        self._gate: IdleGate | None = None
        self.stream_ended = False
        self._last_input = 0.0
        self.stream_finished = asyncio.Event()
        """Set when a finite session (a recording) has delivered everything, and it is drawn."""

    def get_default_screen(self) -> Screen[None]:
        return self.main_screen

    def on_ready(self) -> None:
        # Ready: the main screen is composed, so the feed has somewhere to draw.
        self.set_interval(REFRESH_INTERVAL, self._tick)
        self.set_interval(1.0, self.main_screen.refresh_ages)
        # What start-up made lives as long as the app: frozen now, never walked again.
        self.collector.start()
        self._gate = IdleGate.install(asyncio.get_running_loop())
        if self._gate is not None:
            self.decoding = DecodingThread(
                self.store, self._gate, self._applied, tend=self._tend_collector
            )
            self.decoding.start()
        self.ingest_updates()

    def _tend_collector(self) -> None:
        self.collector.tend(quiet_for=time.perf_counter() - self._last_input)

    def on_unmount(self) -> None:
        if self.decoding is not None:
            self.decoding.stop()
        if self._gate is not None:
            self._gate.uninstall(asyncio.get_running_loop())
        self.collector.stop()

    @work(exclusive=True, group="ingest")
    async def ingest_updates(self) -> None:
        try:
            async for batch in self.session.updates():
                await self._decode(batch)
            await self._decoded()
        except UserError as error:
            self.notify(
                terminal_safe(str(error)),
                title="The stream stopped",
                severity="error",
                timeout=60,
                markup=False,
            )
        self.stream_ended = True
        self.draw()
        self.main_screen.catch_up(now=True)
        self.stream_finished.set()

    async def _decode(self, batch: Sequence[Update]) -> None:
        self._raise_decoding_failure()
        decoding = self.decoding
        if decoding is None:
            for start in range(0, len(batch), INGEST_CHUNK):
                self.apply(batch[start : start + INGEST_CHUNK])
                self._tend_collector()
                await asyncio.sleep(0)
            return
        decoding.put(batch)
        while decoding.backlog > MAX_BACKLOG:
            self._raise_decoding_failure()
            await asyncio.sleep(BACKLOG_POLL)

    async def _decoded(self) -> None:
        """Wait until everything the session delivered is in the store."""
        while self.decoding is not None and self.decoding.backlog:
            self._raise_decoding_failure()
            await asyncio.sleep(BACKLOG_POLL)
        self._raise_decoding_failure()

    @property
    def backlog(self) -> int:
        """Updates the session delivered that are not in the store yet."""
        return 0 if self.decoding is None else self.decoding.backlog

    def _raise_decoding_failure(self) -> None:
        if self.decoding is not None and self.decoding.failure is not None:
            raise self.decoding.failure

    def post_message(self, message: Message) -> bool:
        # Noted when the key is queued, not when its turn comes: until then, the loop could
        # still lend its time to decoding.
        if isinstance(message, events.InputEvent):
            self._input_arrived()
        return super().post_message(message)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self._input_arrived()
        await super().on_event(event)

    def _input_arrived(self) -> None:
        self._last_input = time.perf_counter()
        if self._gate is not None:
            self._gate.shut_for(KEY_QUIET)

    def apply(self, updates: Sequence[Update]) -> None:
        """Apply ``updates`` to the store now (the loop's own decoding, and tests)."""
        events = sum(1 for update in updates if isinstance(update, AgentEvent))
        self._applied(self.store.apply(updates), events)

    def _applied(self, change: StoreChange, events: int) -> None:
        self.events_seen += events
        self.endpoints.observe(change.new_exchanges, change.changed_exchanges, self._protocol_of)
        self.pending.merge(change)

    def _protocol_of(self, key: ConnectionKey) -> str:
        connection = self.store.get(key)
        return "" if connection is None else connection.protocol

    def _now(self) -> float:
        """The clock, or for a finished recording the time of its last request (rates are
        about the traffic, not about when it is looked at)."""
        return self.endpoints.latest if self.stream_ended else self.clock()

    def _tick(self) -> None:
        if time.perf_counter() - self._last_input < KEY_QUIET:
            return  # the keystroke's own repaint goes first; new data waits for the next tick
        self.draw()
        self.main_screen.catch_up()

    def draw(self) -> None:
        """Hand what changed since the last draw to the screens, and refresh the status."""
        self.rate.sample(self.clock(), self.events_seen)
        pending, self.pending = self.pending, PendingChanges()
        self._show_notes(pending.notes)
        if not pending.empty:
            # Every screen on the stack that shows live content gets the changes, covered or
            # not, so that it is current when uncovered. The stack, not self.screen: it is
            # empty while the app shuts down.
            for screen in self.screen_stack:
                if isinstance(screen, ShowsStoreChanges):
                    screen.show_changes(pending)
        self.main_screen.show_status(self.rate.per_second, self.stream_ended)

    def _show_notes(self, notes: Sequence[str]) -> None:
        # Notes hold text from the cluster (pod names, API errors): shown as written, escaped,
        # never read as markup.
        for note in notes[:NOTES_AT_ONCE]:
            self.notify(one_line(note), timeout=NOTE_SECONDS, markup=False)
        if len(notes) > NOTES_AT_ONCE:
            said = counted(len(notes) - NOTES_AT_ONCE, "more note")
            self.notify(f"… and {said} from the session.", timeout=NOTE_SECONDS)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        keys = bindings_of(type(self.screen)) + bindings_of(type(self))
        self.push_screen(HelpScreen(keys, with_filters=isinstance(self.screen, MainScreen)))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in bindings_of(type(screen)):
            label = f"{binding.description} ({binding.key_display or binding.key})"
            yield SystemCommand(label, binding.tooltip, partial(screen.run_action, binding.action))
        yield SystemCommand("Help (?)", "Every key and filter operator", self.action_help)


async def run_app_async(
    session: Session,
    *,
    title: str | None = None,
    clock: Clock = time.time,
    store: Store | None = None,
) -> None:
    """Open ``session`` (its agents start), run the app until the user quits, close it."""
    async with session:
        app = PodtapApp(session, title=title, clock=clock, store=store)
        loop = asyncio.get_running_loop()
        # A SIGTERM (systemd, kubectl, a parent shell) must still stop the agents.
        loop.add_signal_handler(signal.SIGTERM, app.exit)
        try:
            await app.run_async()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)


def require_terminal() -> None:
    """Raises UserError unless stdin and stdout are a terminal: elsewhere the full-screen app
    would write escape codes into a pipe or file and wait for keys that never come."""
    for name, stream in (("stdout", sys.stdout), ("stdin", sys.stdin)):
        if stream is None or not stream.isatty():
            raise UserError(
                f"The inspector is full-screen and needs a terminal, and {name} is not one: "
                "run it in a terminal (podtap dump prints a live target's traffic as text)."
            )


def run_app(
    session: Session,
    *,
    title: str | None = None,
    clock: Clock = time.time,
    store: Store | None = None,
) -> None:
    require_terminal()
    asyncio.run(run_app_async(session, title=title, clock=clock, store=store))
