"""What every source of traffic gives its consumers (dump, record, the app).

A *session* is opened on a target: it starts or attaches one agent per tapped process or pod,
keeps one reconnecting stream per agent, and yields batches of updates (``tui.model.updates``)
until it is closed. Closing it (``async with`` exit) stops and removes every agent it started,
whatever happened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Protocol, Self

from tui.model.updates import Update


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
