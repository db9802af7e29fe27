"""What one ``Store.apply`` changed (tui.model.store): the app redraws from this alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from tui.model.flows import ConnectionKey, Exchange


@dataclass(slots=True)
class StoreChange:
    """What one ``apply`` changed; the app redraws from this alone."""

    new_connections: list[ConnectionKey] = field(default_factory=list)
    changed_connections: set[ConnectionKey] = field(default_factory=set)
    new_exchanges: list[Exchange] = field(default_factory=list)
    changed_exchanges: list[Exchange] = field(default_factory=list)
    dropped: int = 0
    """Connections and exchanges evicted by the caps during this apply."""
    removed_connections: list[ConnectionKey] = field(default_factory=list)
    """Keys evicted by the connection cap during this apply."""
    view_changed: bool = False
    """The visible set of connections changed (something appeared, left, or was re-ordered)."""
    sources_changed: bool = False
    stats_changed: bool = False
    notes: list[str] = field(default_factory=list)
    """What the session said during this apply (SessionNote), for the screen to show."""

    def exchange_started(self, exchange: Exchange) -> None:
        self.new_exchanges.append(exchange)

    def exchange_changed(self, exchange: Exchange) -> None:
        self.changed_exchanges.append(exchange)
