"""Store changes merged between two screen refreshes (a burst of batches draws once)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from tui.model.flows import ConnectionKey, Exchange
from tui.model.store import StoreChange


@dataclass(slots=True)
class PendingChanges:
    view_changed: bool = False
    """Connections appeared in or left the filtered view: reload the list."""
    connections: set[ConnectionKey] = field(default_factory=set)
    exchanges: set[Exchange] = field(default_factory=set)
    """By identity: exchanges are mutable and compare (and hash) as objects."""
    everything: bool = False
    """The view was rebuilt (filter, noise, clear): redraw it all."""
    count: int = 0
    """How many store changes were merged in."""
    notes: list[str] = field(default_factory=list)
    """What the session said meanwhile (a pod that joined, a recording read to its end)."""

    def merge(self, change: StoreChange) -> None:
        self.count += 1
        if change.view_changed or change.new_connections or change.removed_connections:
            self.view_changed = True
        self.connections.update(change.changed_connections)
        self.connections.update(change.new_connections)
        self.exchanges.update(change.new_exchanges)
        self.exchanges.update(change.changed_exchanges)
        self.notes += change.notes

    @property
    def empty(self) -> bool:
        return not (self.count or self.everything)

    @classmethod
    def full(cls) -> PendingChanges:
        return cls(view_changed=True, everything=True)


@runtime_checkable
class ShowsStoreChanges(Protocol):
    """A screen that shows live store content: the app hands it what changed at each redraw."""

    def show_changes(self, changes: PendingChanges) -> None: ...
