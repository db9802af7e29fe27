"""When the agent leaves on its own: nobody came, or everybody left.

An agent nobody talks to is a privileged process capturing traffic for no one, so it exits
``first_client`` seconds after it started if no client ever connected, and ``idle`` seconds after
the last client left. Times are the event loop's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Timeouts:
    """Seconds; ``None`` waits forever."""

    first_client: float | None = 60.0
    idle: float | None = 30.0


class ClientPresence:
    """How many clients are connected, and since when nobody is."""

    def __init__(self) -> None:
        self.connected = 0
        self.ever_connected = False
        self.last_left: float | None = None
        self._changed = asyncio.Event()

    def joined(self) -> None:
        self.connected += 1
        self.ever_connected = True
        self._notify()

    def left(self, now: float) -> None:
        self.connected -= 1
        if self.connected == 0:
            self.last_left = now
        self._notify()

    def _notify(self) -> None:
        # set() wakes the current waiters; clearing at once makes the next wait a fresh one.
        self._changed.set()
        self._changed.clear()

    async def wait_change(self) -> None:
        await self._changed.wait()


def exit_deadline(
    presence: ClientPresence, timeouts: Timeouts, started_at: float
) -> tuple[float, str] | None:
    """When the agent should exit if nothing changes, and why; ``None``: not while it stands."""
    if presence.connected > 0:
        return None
    if not presence.ever_connected or presence.last_left is None:
        if timeouts.first_client is None:
            return None
        return (
            started_at + timeouts.first_client,
            f"no client connected within {timeouts.first_client:g} s",
        )
    if timeouts.idle is None:
        return None
    return presence.last_left + timeouts.idle, f"no client for {timeouts.idle:g} s"


async def wait_until_unwanted(
    presence: ClientPresence, timeouts: Timeouts, started_at: float
) -> str:
    """Return, with the reason, once a timeout has passed with no client connected."""
    loop = asyncio.get_running_loop()
    while True:
        deadline = exit_deadline(presence, timeouts, started_at)
        if deadline is None:
            await presence.wait_change()
            continue
        at, reason = deadline
        remaining = at - loop.time()
        if remaining <= 0:
            return reason
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(presence.wait_change(), remaining)
