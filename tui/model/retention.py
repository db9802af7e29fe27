"""What the store lets go (tui.model.store): its caps on connections, exchanges and raw bytes.

A long capture would grow the store without end; past a cap the oldest go first: connections in
the order they were added, exchanges in the order they were created, connections' raw bytes in
the order they first held some. What is let go is counted (``dropped_connections``,
``dropped_exchanges``) and told through the change record, and the key of an evicted connection
is remembered for a while so that its later events do not bring it back as a made-up one.
"""

from __future__ import annotations

import itertools
from collections import deque

from tui.model.body_budget import BodyBudget
from tui.model.filtered_view import FilteredView
from tui.model.flows import Connection, ConnectionKey, Exchange
from tui.model.http import ConnectionDecoder
from tui.model.store_change import StoreChange

_EVICTED_KEYS_REMEMBERED = 10_000


class Retention:
    """The caps over a store's connections; the store shares with it the connections, their
    decoders, the body budget and the view, which an eviction updates too."""

    def __init__(
        self,
        connections: dict[ConnectionKey, Connection],
        decoders: dict[ConnectionKey, ConnectionDecoder],
        bodies: BodyBudget,
        view: FilteredView,
        *,
        max_connections: int,
        max_exchanges: int,
        raw_budget: int,
    ) -> None:
        self.max_connections = max_connections
        self.max_exchanges = max_exchanges
        self.raw_budget = raw_budget
        """Bytes of raw_in/raw_out kept over all connections; past it the oldest are released."""
        self.dropped_connections = 0
        self.dropped_exchanges = 0
        self.exchange_count = 0
        self._connections = connections
        self._decoders = decoders
        self._bodies = bodies
        self._view = view
        self._raw_total = 0
        self._raw_holders: deque[Connection] = deque()
        # One entry per exchange created, oldest first: which connection holds it. Entries of
        # evicted connections are skipped when the exchange cap pops them.
        self._exchange_owners: deque[Connection] = deque()
        self._exchange_order: deque[Exchange] = deque()
        """The exchanges themselves, in the same order (and popped with their owner)."""
        self._evicted: dict[ConnectionKey, None] = {}

    def fed(self, conn: Connection, exchanges_before: int, raw_before: int) -> None:
        """``conn``'s decoder was fed bytes: it held ``exchanges_before`` exchanges and
        ``raw_before`` raw bytes before."""
        # exchanges_added inlined: this runs for every DataReceived, a call costs there.
        added = len(conn.exchanges) - exchanges_before
        if added > 0:
            self.exchange_count += added
            self._exchange_owners.extend(itertools.repeat(conn, added))
            self._exchange_order.extend(conn.exchanges[-added:])
        raw_added = len(conn.raw_in) + len(conn.raw_out) - raw_before
        if raw_added:
            if not raw_before:
                self._raw_holders.append(conn)
            self._raw_total += raw_added

    def exchanges_added(self, conn: Connection, before: int) -> None:
        """``conn`` held ``before`` exchanges; those after them are new."""
        added = len(conn.exchanges) - before
        if added > 0:
            self.exchange_count += added
            self._exchange_owners.extend(itertools.repeat(conn, added))
            self._exchange_order.extend(conn.exchanges[-added:])

    def evicted(self, key: ConnectionKey) -> bool:
        """Whether the connection of ``key`` was evicted (lately: old keys are forgotten)."""
        return key in self._evicted

    def readmit(self, key: ConnectionKey) -> None:
        """The connection of ``key`` opened again: its events are welcome."""
        self._evicted.pop(key, None)

    def held_in_order(self, hidden: set[Exchange]) -> list[Exchange]:
        """Every exchange held and not in ``hidden``, across connections, oldest first.

        The creation order runs beside the owners' (the caps pop both): an exchange is held
        while its owner is. One pass, no sort.
        """
        live = self._connections
        return [
            exchange
            for owner, exchange in zip(self._exchange_owners, self._exchange_order, strict=True)
            if live.get(owner.key) is owner and exchange not in hidden
        ]

    def enforce(self, change: StoreChange) -> None:
        """Let go of the oldest of whatever is past its cap; tell ``change``."""
        while self._raw_total > self.raw_budget and self._raw_holders:
            holder = self._raw_holders.popleft()
            if self._connections.get(holder.key) is holder:
                self._raw_total -= len(holder.raw_in) + len(holder.raw_out)
                holder.raw_in = bytearray()
                holder.raw_out = bytearray()
                holder.raw_released = True
                change.changed_connections.add(holder.key)
        if len(self._connections) > self.max_connections:
            # Evict in batches of 1%: popping the oldest key of a dict one at a time re-scans
            # the deleted slots at its front every time.
            excess = len(self._connections) - self.max_connections
            batch = max(excess, self.max_connections // 100)
            oldest = itertools.islice(self._connections, min(batch, len(self._connections)))
            for key in list(oldest):
                self._evict_connection(key, change)
        if self.exchange_count > self.max_exchanges:
            self._evict_exchanges(change)

    def clear(self) -> None:
        """The store forgot every connection and exchange."""
        self._exchange_owners.clear()
        self._exchange_order.clear()
        self.exchange_count = 0
        self._raw_holders.clear()
        self._raw_total = 0
        self.dropped_connections = 0
        self.dropped_exchanges = 0

    def _evict_exchanges(self, change: StoreChange) -> None:
        target = self.max_exchanges - self.max_exchanges // 100
        per_connection: dict[ConnectionKey, tuple[Connection, int]] = {}
        while self.exchange_count > target and self._exchange_owners:
            owner = self._exchange_owners.popleft()
            self._exchange_order.popleft()
            if self._connections.get(owner.key) is not owner:
                continue
            _, count = per_connection.get(owner.key, (owner, 0))
            per_connection[owner.key] = (owner, count + 1)
            self.exchange_count -= 1
        evicted: set[Exchange] = set()
        for conn, count in per_connection.values():
            count = min(count, len(conn.exchanges))
            self._bodies.forget(conn.exchanges[:count])
            for exchange in conn.exchanges[:count]:
                evicted.add(exchange)
                self._view.exchange_evicted(exchange, conn.key)
            del conn.exchanges[:count]
            conn.exchanges_dropped += count
            self.dropped_exchanges += count
            change.dropped += count
            change.changed_connections.add(conn.key)
        if evicted:
            change.new_exchanges = [ex for ex in change.new_exchanges if ex not in evicted]
            change.changed_exchanges = [ex for ex in change.changed_exchanges if ex not in evicted]

    def _evict_connection(self, key: ConnectionKey, change: StoreChange) -> None:
        conn = self._connections.pop(key)
        decoder = self._decoders.pop(key, None)
        if decoder is not None:
            decoder.release()
        self._raw_total -= len(conn.raw_in) + len(conn.raw_out)
        self.exchange_count -= len(conn.exchanges)
        self._bodies.forget(conn.exchanges)
        if self._view.connection_evicted(conn):
            change.view_changed = True
        self._evicted[key] = None
        if len(self._evicted) > _EVICTED_KEYS_REMEMBERED:
            for old in list(itertools.islice(self._evicted, _EVICTED_KEYS_REMEMBERED // 10)):
                del self._evicted[old]
        self.dropped_connections += 1
        self.dropped_exchanges += len(conn.exchanges)
        change.dropped += 1 + len(conn.exchanges)
        change.removed_connections.append(key)
        change.changed_connections.discard(key)
