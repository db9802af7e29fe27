"""Stopping a recording without dropping what was already captured: how far the recording is
behind the capture once a stop was asked for, and what it could not write when it had to stop
before catching up. Sans-IO: fed the batches written, and the time of the stop."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from agent.events import ConnectionOpened, DataReceived, Gap, Hello
from tui.model.updates import AgentEvent, SourceStatus, Update

DRAIN_LIMIT = 3.0
"""Seconds a stop spends at most writing what the agents captured before it."""
DRAIN_IDLE = 0.5
"""Nothing arrived for this long while stopping: the agents hold nothing more."""


_CAPTURED = (DataReceived, ConnectionOpened, Gap)
"""Events whose time is a packet's capture time: a Stats (or an idle close) is stamped when
the agent's clock ticks, and may be journaled before packets captured earlier that the agent
had not read yet."""


class CatchUp:
    """How far the recording is behind the capture, once a stop was asked for.

    Events carry their capture time: a source whose newest event written is from after the
    stop has delivered everything captured before it. Sources whose stream ended are not
    waited for."""

    RATE_WINDOW = 1.0
    """Seconds of capture over which the rate of writing is measured."""

    def __init__(self, unit: str = "exchanges") -> None:
        self.unit = unit
        """What the recording counts as it writes (``exchanges``, ``events``): the words of
        an estimate of what it did not write."""
        self.asked_at: float | None = None
        self.stopped_by: str | None = None
        """What ended the catching up early: a second signal, ``limit`` or ``idle``."""
        self._newest: dict[str, float] = {}
        # Per source: the newest journaled seq written, and the newest the agent said it had.
        self._written_seq: dict[str, int] = {}
        self._agent_seq: dict[str, int] = {}
        # (capture time, units written by then), over the last RATE_WINDOW or so.
        self._samples: deque[tuple[float, int]] = deque()

    def ask(self, now: float) -> None:
        self.asked_at = now

    def saw(self, batch: Sequence[Update], written: int) -> None:
        """``batch`` was written; ``written`` units have been written in all."""
        newest = self._newest
        latest = 0.0
        for update in batch:
            if isinstance(update, AgentEvent):
                event = update.event
                if event.seq:  # journaled: its place in the capture
                    self._written_seq[update.source] = event.seq
                    if isinstance(event, _CAPTURED):
                        newest[update.source] = latest = event.ts
                elif isinstance(event, Hello):  # where the agent's journal stands
                    self._agent_seq[update.source] = event.next_seq - 1
            elif isinstance(update, SourceStatus) and update.state in ("gone", "failed"):
                newest.pop(update.source, None)
                self._agent_seq.pop(update.source, None)
        samples = self._samples
        if latest and (not samples or latest > samples[-1][0]):
            samples.append((latest, written))
            while len(samples) > 2 and latest - samples[1][0] >= self.RATE_WINDOW:
                samples.popleft()

    def _rate(self) -> float:
        """Units written per second of capture, in the newest stretch written."""
        samples = self._samples
        # A client far behind may have written only a fraction of a second of a flood.
        if len(samples) < 2 or samples[-1][0] - samples[0][0] < self.RATE_WINDOW / 20:
            return 0.0
        (first_ts, first), (last_ts, last) = samples[0], samples[-1]
        return (last - first) / (last_ts - first_ts)

    def caught_up(self) -> bool:
        asked_at = self.asked_at
        return asked_at is not None and all(ts >= asked_at for ts in self._newest.values())

    def unwritten(self) -> str:
        """One sentence on what was captured before the stop and not written ("" if none)."""
        asked_at = self.asked_at
        if asked_at is None or self.stopped_by is None or self.caught_up():
            return ""
        held = self.events_not_written()
        # Silence alone does not prove the agents are done: one whose sender stalls under a
        # flood sends nothing for a while yet holds events it said it had journaled.
        if self.stopped_by == "idle" and not held:
            return ""
        behind = asked_at - min(self._newest.values(), default=asked_at)
        if behind <= 0:
            return (
                "stopped before the agents had sent everything: what they still held "
                "was not written."
            )
        if held:  # as the agents said: exact, for what they had journaled
            what = f"~{held:,} events the agents held"
        else:  # they never said (a client that was not behind for long): an estimate
            estimate = round(self._rate() * behind)
            what = (
                f"~{estimate:,} {self.unit} at the rate seen last" if estimate else "what they held"
            )
        return (
            f"stopped before the agents had sent everything: {what} (about the last "
            f"{behind:.1f} s of capture before the stop) were not written."
        )

    def events_not_written(self) -> int:
        """Events the agents had journaled (as they last said) that were not written."""
        written = self._written_seq
        return sum(
            max(0, head - written.get(source, 0)) for source, head in self._agent_seq.items()
        )
