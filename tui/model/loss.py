"""What the capture lost, in every way it can lose, counted in the unit each loss comes in.

Events the agent could not deliver (``EventsLost``: the client read too slowly, or the journal
was overrun), packets the kernel dropped before the capture read them, holes in TCP streams
(``Stats.gaps``) and agents that went away. The agents' counters are cumulative since each agent
started, so a restarted agent (a new ``Hello.agent_id``) starts a new count that adds to the
old one. Sans-IO: fed updates, it answers with numbers and sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.events import EventsLost, Hello, LostReason, Stats
from tui.model.updates import AgentEvent, SourceStatus, Update

LOST_REASON_WORDS: dict[LostReason, str] = {
    "slow-client": "slow client",
    "journal": "journal overrun",
}


@dataclass(slots=True)
class _AgentCounters:
    """One source's counters: those of its agents before a restart, and of the current one."""

    agent_id: str = ""
    kernel_drops: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    earlier_kernel_drops: int = 0
    earlier_gaps: int = 0
    earlier_gap_bytes: int = 0
    ring_waiting: int = 0
    """What the agent's latest Stats say its capture had not read yet (current, not summed)."""

    def restart(self, agent_id: str) -> None:
        self.earlier_kernel_drops += self.kernel_drops
        self.earlier_gaps += self.gaps
        self.earlier_gap_bytes += self.gap_bytes
        self.kernel_drops = self.gaps = self.gap_bytes = 0
        self.agent_id = agent_id


@dataclass(slots=True)
class LossTally:
    lost_events: dict[LostReason, int] = field(default_factory=dict)
    """Events never delivered, by why."""
    gone: list[str] = field(default_factory=list)
    """Sources whose stream ended for good (gone or failed) after they had been live."""
    _agents: dict[str, _AgentCounters] = field(default_factory=dict)
    _live: set[str] = field(default_factory=set)

    def observe(self, updates: Sequence[Update]) -> None:
        for update in updates:
            if isinstance(update, AgentEvent):
                self.observe_event(update.source, update.event)
            elif isinstance(update, SourceStatus):
                self.observe_status(update)

    def observe_event(self, source: str, event: object) -> None:
        if isinstance(event, EventsLost):
            self.lost_events[event.reason] = self.lost_events.get(event.reason, 0) + event.count
        elif isinstance(event, Stats):
            counters = self._agents.setdefault(source, _AgentCounters())
            counters.kernel_drops = max(counters.kernel_drops, event.kernel_drops)
            counters.gaps = max(counters.gaps, event.gaps)
            counters.gap_bytes = max(counters.gap_bytes, event.gap_bytes)
            counters.ring_waiting = event.ring_waiting
        elif isinstance(event, Hello):
            counters = self._agents.setdefault(source, _AgentCounters())
            if counters.agent_id and counters.agent_id != event.agent_id:
                counters.restart(event.agent_id)
            counters.agent_id = event.agent_id

    def observe_status(self, status: SourceStatus) -> None:
        if status.state == "live":
            self._live.add(status.source)
        elif status.state in ("gone", "failed") and status.source in self._live:
            self._live.discard(status.source)
            self.gone.append(status.source)

    # ------------------------------------------------------------------------- answers

    @property
    def events(self) -> int:
        return sum(self.lost_events.values())

    @property
    def kernel_drops(self) -> int:
        return sum(c.kernel_drops + c.earlier_kernel_drops for c in self._agents.values())

    @property
    def gaps(self) -> int:
        return sum(c.gaps + c.earlier_gaps for c in self._agents.values())

    @property
    def gap_bytes(self) -> int:
        return sum(c.gap_bytes + c.earlier_gap_bytes for c in self._agents.values())

    @property
    def unread(self) -> int:
        """Packets the agents had captured but not read when they last said: a loss once the
        capture stops (the agents are stopped with the session)."""
        return sum(c.ring_waiting for c in self._agents.values())

    def kernel_drops_of(self, source: str) -> int:
        """The current agent of ``source``'s drops (what its own Stats say)."""
        counters = self._agents.get(source)
        return 0 if counters is None else counters.kernel_drops

    def gaps_of(self, source: str) -> tuple[int, int]:
        """The current agent of ``source``'s gaps and bytes missing in them."""
        counters = self._agents.get(source)
        return (0, 0) if counters is None else (counters.gaps, counters.gap_bytes)

    @property
    def anything(self) -> bool:
        return bool(self.events or self.kernel_drops or self.gaps or self.gone or self.unread)

    def parts(self) -> list[str]:
        """Each kind of loss with its count and unit: ``~373,398 events (slow client)``…"""
        parts = [
            f"~{count:,} events ({LOST_REASON_WORDS.get(reason, reason)})"
            for reason, count in sorted(self.lost_events.items())
            if count
        ]
        if self.kernel_drops:
            parts.append(f"{self.kernel_drops:,} packets dropped by the kernel")
        if self.unread:
            parts.append(f"~{self.unread:,} packets captured but not yet read by the agents")
        if self.gaps:
            parts.append(
                f"{self.gaps:,} gaps in TCP streams ({self.gap_bytes:,} bytes not captured)"
            )
        if self.gone:
            parts.append(f"the stream of {', '.join(self.gone)} (the agent went away)")
        return parts

    def summary(self) -> str:
        """``lost ~M events (slow client), K packets dropped by the kernel`` or ``nothing lost``."""
        parts = self.parts()
        return "lost " + ", ".join(parts) if parts else "nothing lost"

    def short(self) -> str:
        """The status bar's few words: ``lost ~12k events, 40 pkts, 3 gaps``."""
        parts = []
        if self.events:
            parts.append(f"~{_compact(self.events)} events")
        if self.kernel_drops:
            parts.append(f"{_compact(self.kernel_drops)} pkts")
        if self.gaps:
            parts.append(f"{_compact(self.gaps)} gaps")
        if self.gone:
            parts.append(f"{len(self.gone)} agent{'s' if len(self.gone) > 1 else ''} gone")
        return "lost " + ", ".join(parts) if parts else ""


def _compact(count: int) -> str:
    if count < 10_000:
        return f"{count:,}"
    if count < 10_000_000:
        return f"{count // 1000:,}k"
    return f"{count // 1_000_000:,}M"
