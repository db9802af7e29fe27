"""What the commands that run a capture until stopped (``dump``, ``record``) share: the signals
that stop it cleanly, and the status lines that say on stderr what happens to it."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TextIO

from agent.events import AnyEvent, EventsLost, Hello, Stats
from tui.model.loss import LOST_REASON_WORDS, LossTally
from tui.model.terminal_text import terminal_safe
from tui.model.updates import AgentEvent, SessionNote, SourceStatus, Update

LISTENING = "Listening for traffic... Press Ctrl+C to stop"

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_EVENTS_TOLD = frozenset({Stats, EventsLost, Hello})
"""The events the status lines and the loss totals are made of."""


class StopOnSignals:
    """While entered, Ctrl+C, SIGTERM and SIGHUP (or ``stop``) cancel the running task, once.

    The task tells a stop it asked for from any other cancellation with ``requested`` and, when
    it was, carries on with ``absorb`` (the agents stop and files are finalised as usual).
    With ``first``, the first stop calls it instead (the task winds down by itself, writing
    what it still has), and the next one cancels.
    """

    def __init__(self, first: Callable[[str], None] | None = None) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._loop = asyncio.get_running_loop()
        self._first = first
        self.cancelled_by: str | None = None
        """The reason of the stop that cancelled the task."""
        self.reasons: list[str] = []

    def stop(self, reason: str) -> None:
        first = not self.reasons
        self.reasons.append(reason)
        if first and self._first is not None:
            self._first(reason)
        elif self.cancelled_by is None:
            self.cancelled_by = reason
            self._task.cancel()

    @property
    def requested(self) -> bool:
        return bool(self.reasons)

    def absorb(self) -> None:
        """The cancellation was the stop asked for: the task goes on to finish normally."""
        self._task.uncancel()

    def __enter__(self) -> StopOnSignals:
        for signum in STOP_SIGNALS:
            self._loop.add_signal_handler(signum, self.stop, signum.name)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum in STOP_SIGNALS:
            self._loop.remove_signal_handler(signum)


class StatusReporter:
    """Says on stderr what happens to the capture: once live, reconnections, failures, and
    every loss as it happens (``losses`` keeps the totals for the summary at exit)."""

    LOSS_LINE_INTERVAL = 1.0
    """Seconds of capture time between two lines about lost events: a client that keeps
    falling behind gets a line a second, not one per notice."""

    def __init__(self, stderr: TextIO) -> None:
        self._stderr = stderr
        self._listening = False
        self.losses = LossTally()
        self._events_said: dict[str, tuple[float, int]] = {}  # source: (ts, count) last said
        self._events_unsaid: dict[str, dict[str, int]] = {}
        self.failure: str | None = None

    def report(self, updates: Sequence[Update]) -> None:
        for update in updates:
            if isinstance(update, AgentEvent):
                # Most events (a flood's data) say nothing here: skipped at the least cost.
                if type(update.event) in _EVENTS_TOLD:
                    self._event(update.source, update.event)
            elif isinstance(update, SourceStatus):
                self.losses.observe_status(update)
                self._status(update)
            elif isinstance(update, SessionNote):
                self.say(f"podtap: {update.text}")

    def _event(self, source: str, event: AnyEvent) -> None:
        losses = self.losses
        if isinstance(event, Stats):
            drops_before = losses.kernel_drops_of(source)
            gaps_before = losses.gaps_of(source)
            losses.observe_event(source, event)
            self._drops(source, drops_before)
            self._gaps(source, gaps_before)
            self._events_lost(source, event.ts, force=True)
        elif isinstance(event, EventsLost):
            losses.observe_event(source, event)
            unsaid = self._events_unsaid.setdefault(source, {})
            words = LOST_REASON_WORDS.get(event.reason, event.reason)
            unsaid[words] = unsaid.get(words, 0) + event.count
            self._events_lost(source, event.ts, force=False)
        elif isinstance(event, Hello):
            losses.observe_event(source, event)
            if not self._listening:
                self._listening = True
                self.say(f"* {LISTENING}")

    def _status(self, status: SourceStatus) -> None:
        where = _where(status.source)
        if status.state == "failed":
            self.failure = status.detail
            self.say(f"podtap: {where}{status.detail}")
        elif status.state in ("reconnecting", "gone") or (
            status.state == "live" and self._listening
        ):
            # The first "live" is announced by the Hello that follows it.
            self.say(f"podtap: {where}{status.detail}")

    def _drops(self, source: str, before: int) -> None:
        # Drops lose whole packets; what they carried shows up in the dump as "bytes missing"
        # only where the agent could tell. Say it, so that no loss goes unnoticed.
        total = self.losses.kernel_drops_of(source)
        if total > before:
            self.say(
                f"podtap: {_where(source)}the kernel dropped {total - before} packets "
                f"({total} in all): the capture could not keep up, and what they carried is "
                "missing."
            )

    def _gaps(self, source: str, before: tuple[int, int]) -> None:
        gaps, gap_bytes = self.losses.gaps_of(source)
        if gaps > before[0]:
            self.say(
                f"podtap: {_where(source)}{gaps - before[0]} gaps in TCP streams "
                f"({gap_bytes - before[1]:,} bytes not captured; {gaps} gaps in all): "
                "the exchanges around them are marked incomplete."
            )

    def _events_lost(self, source: str, ts: float, *, force: bool) -> None:
        unsaid = self._events_unsaid.get(source)
        if not unsaid:
            return
        said_at, said_total = self._events_said.get(source, (float("-inf"), 0))
        if not force and ts - said_at < self.LOSS_LINE_INTERVAL:
            return
        count = sum(unsaid.values())
        why = ", ".join(sorted(unsaid))
        total = said_total + count
        self.say(
            f"podtap: {_where(source)}lost ~{count:,} events ({why}; ~{total:,} in all): "
            "what they carried will never reach the output."
        )
        self._events_said[source] = (ts, total)
        unsaid.clear()

    def finish(self) -> None:
        """Say what is still unsaid (the capture ended before the next line was due)."""
        for source in list(self._events_unsaid):
            self._events_lost(source, float("inf"), force=True)

    def say(self, line: str) -> None:
        # Details come from agents and files: never let them drive the terminal.
        self._stderr.write(terminal_safe(line) + "\n")
        self._stderr.flush()


def _where(source: str) -> str:
    return "" if source == "local" else f"[{source}] "
