"""What a recording has written so far, for its progress line, its summary and ``--count``.

Two ways of counting, picked by what the recording needs anyway:

* :class:`EventTally` counts events, connections opened and payload bytes from the events
  themselves. A flood brings a quarter of a million events a second: it looks at each one's
  exact type and nothing more, so that a JSONL or pcap recording keeps up with it.
* :class:`ExchangeTally` also decodes HTTP (with the app's store) and counts exchanges
  answered in full: what a HAR is made of anyway, and what ``--count`` stops on. Decoding costs
  tens of times more per event than writing it, so only those two pay for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.events import ConnectionClosed, ConnectionOpened, DataReceived
from tui.model.flows import Exchange
from tui.model.store import Store, StoreChange
from tui.model.updates import AgentEvent, Update


@dataclass(slots=True)
class Progress:
    decoded: bool = False
    """Whether HTTP is decoded: only then are ``exchanges`` and ``counted`` known."""
    events: int = 0
    """Events written (a JSONL recording's lines, its header aside)."""
    exchanges: int = 0
    """HTTP exchanges answered in full."""
    connections: int = 0
    other_connections_closed: int = 0
    """Connections that were not HTTP, closed: ``--count`` counts them too."""
    bytes: int = 0
    """Payload bytes captured, both directions."""

    @property
    def counted(self) -> int:
        return self.exchanges + self.other_connections_closed

    @property
    def written(self) -> int:
        """Exchanges when HTTP is decoded, events otherwise: what a stop's estimate of what
        it did not write counts in."""
        return self.exchanges if self.decoded else self.events


class EventTally:
    """Counts from the events alone: no decoding."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress or Progress(decoded=False)

    def count(self, updates: Sequence[Update]) -> None:
        progress = self.progress
        events = connections = payload = 0
        for update in updates:
            # Exact types (none of these is subclassed): cheaper than isinstance, per event.
            if type(update) is not AgentEvent:
                continue
            events += 1
            event = update.event
            if type(event) is DataReceived:
                payload += len(event.data)
            elif type(event) is ConnectionOpened:
                connections += 1
        progress.events += events
        progress.connections += connections
        progress.bytes += payload


class ExchangeTally:
    """Counts after decoding HTTP into ``store`` (which a HAR writer reads too)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.progress = Progress(decoded=True)
        self._events = EventTally(self.progress)
        self._unanswered: set[Exchange] = set()

    def count(self, updates: Sequence[Update]) -> StoreChange:
        """Decode ``updates`` into the store, count them, and give what changed."""
        change = self.store.apply(updates)
        self._events.count(updates)
        progress = self.progress
        for update in updates:
            if type(update) is AgentEvent and type(update.event) is ConnectionClosed:
                connection = self.store.get((update.source, update.event.conn))
                if connection is not None and connection.protocol != "http":
                    progress.other_connections_closed += 1
        unanswered = self._unanswered
        for exchange in change.new_exchanges:
            if exchange.finished is not None:
                progress.exchanges += 1
            else:
                unanswered.add(exchange)
        for exchange in change.changed_exchanges:
            if exchange.finished is not None and exchange in unanswered:
                unanswered.discard(exchange)
                progress.exchanges += 1
        return change

    def forget_abandoned(self) -> None:
        """Requests that will never be answered (their connection is gone) are not waited
        for."""
        store = self.store
        self._unanswered = {
            exchange
            for exchange in self._unanswered
            if (connection := store.get(exchange.key)) is not None and connection.closed is None
        }


def recording_store(body_cap: int, options: Mapping[str, int] | None = None) -> Store:
    """A store for a recording: caps well below the app's, as a recording only needs the
    exchanges not yet written."""
    return Store(
        max_connections=5_000,
        max_exchanges=5_000,
        body_cap=body_cap,
        raw_cap=1024,
        **(options or {}),
    )
