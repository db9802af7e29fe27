"""What every source of traffic gives its consumers (dump, record, the app).

A *session* is opened on a target: it starts or attaches one agent per tapped process or pod,
keeps one reconnecting stream per agent, and yields batches of updates until it is closed.
Closing it (``async with`` exit) stops and removes every agent it started, whatever happened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self

from agent.events import AnyEvent

SourceState = Literal["starting", "live", "reconnecting", "gone", "failed"]


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """One event from one agent. ``source`` names the agent: ``local`` or ``NAMESPACE/POD``."""

    source: str
    event: AnyEvent


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """An agent's stream changed state; ``detail`` is one sentence for the user."""

    source: str
    state: SourceState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SessionNote:
    """Something the user should know that is not an error (e.g. a guessed container)."""

    text: str


Update = AgentEvent | SourceStatus | SessionNote


class Session(Protocol):
    description: str
    """The target as the user would name it, for titles and status bars."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def updates(self) -> AsyncIterator[Sequence[Update]]:
        """Batches of updates, in order per source, until the session is closed."""
        ...
