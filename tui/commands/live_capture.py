"""What the commands that run a capture until stopped (``dump``, ``record``) share: the signals
that stop it cleanly, and the status lines that say on stderr what happens to it."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from types import TracebackType
from typing import TextIO

from agent.events import Hello, Stats
from tui.model.terminal_text import terminal_safe
from tui.model.updates import AgentEvent, SessionNote, SourceStatus, Update

LISTENING = "Listening for traffic... Press Ctrl+C to stop"

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopOnSignals:
    """While entered, Ctrl+C, SIGTERM and SIGHUP (or ``stop``) cancel the running task, once.

    The task tells a stop it asked for from any other cancellation with ``requested`` and, when
    it was, carries on with ``absorb`` (the agents stop and files are finalised as usual).
    """

    def __init__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._loop = asyncio.get_running_loop()
        self.reasons: list[str] = []

    def stop(self, reason: str) -> None:
        if not self.reasons:
            self._task.cancel()
        self.reasons.append(reason)

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
    """Says on stderr what happens to the capture: once live, reconnections, failures."""

    def __init__(self, stderr: TextIO) -> None:
        self._stderr = stderr
        self._listening = False
        self._kernel_drops: dict[str, int] = {}
        self._agents: dict[str, str] = {}
        self.failure: str | None = None

    def report(self, updates: Sequence[Update]) -> None:
        for update in updates:
            if isinstance(update, AgentEvent):
                event = update.event
                if isinstance(event, Stats):
                    self._drops(update.source, event.kernel_drops)
                elif isinstance(event, Hello):
                    if self._agents.get(update.source) != event.agent_id:
                        # A new agent counts its drops from zero.
                        self._agents[update.source] = event.agent_id
                        self._kernel_drops[update.source] = 0
                    if not self._listening:
                        self._listening = True
                        self._say(f"* {LISTENING}")
            elif isinstance(update, SourceStatus):
                self._status(update)
            elif isinstance(update, SessionNote):
                self._say(f"podtap: {update.text}")

    def _status(self, status: SourceStatus) -> None:
        where = "" if status.source == "local" else f"[{status.source}] "
        if status.state == "failed":
            self.failure = status.detail
            self._say(f"podtap: {where}{status.detail}")
        elif status.state in ("reconnecting", "gone") or (
            status.state == "live" and self._listening
        ):
            # The first "live" is announced by the Hello that follows it.
            self._say(f"podtap: {where}{status.detail}")

    def _drops(self, source: str, total: int) -> None:
        # Drops lose whole packets; what they carried shows up in the dump as "bytes missing"
        # only where the agent could tell. Say it, so that no loss goes unnoticed.
        before = self._kernel_drops.get(source, 0)
        if total > before:
            where = "" if source == "local" else f"[{source}] "
            self._say(
                f"podtap: {where}the kernel dropped {total - before} packets ({total} in all): "
                "the capture could not keep up, and what they carried is missing."
            )
        self._kernel_drops[source] = total

    def _say(self, line: str) -> None:
        # Details come from agents and files: never let them drive the terminal.
        self._stderr.write(terminal_safe(line) + "\n")
        self._stderr.flush()
