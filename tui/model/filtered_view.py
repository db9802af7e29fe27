"""The filtered view of the store: which connections and exchanges the filter lets through.

Kept up to date as the store changes rather than recomputed on every redraw: the store tells
the view which exchanges are new or changed, which connections were touched, which were evicted,
and the view re-evaluates just those. It remembers the exchanges it hides (few, usually) and,
per connection, how many, so that a connection is shown while any of its exchanges is. The noise
(health checks, metrics scrapes: tui.model.noise) is kept whatever the view shows, so hiding or
showing it walks the noise alone, not every exchange kept.
"""

from __future__ import annotations

from collections.abc import Iterable

from tui.model.filters import Filter, Not
from tui.model.flows import Connection, ConnectionKey, Exchange
from tui.model.noise import is_noise


class FilteredView:
    """The view over ``connections`` (the store's own mapping, which it only reads)."""

    def __init__(self, connections: dict[ConnectionKey, Connection]) -> None:
        self._connections = connections
        self._filter: Filter | None = None
        self._invert = False
        self._hide_noise = False
        self._hidden: set[Exchange] = set()
        self._hidden_count: dict[ConnectionKey, int] = {}
        self._noise: set[Exchange] = set()
        self._noise_count: dict[ConnectionKey, int] = {}
        self._visible: set[ConnectionKey] = set()
        self._visible_cache: list[Connection] | None = None

    # -- what the filter is ----------------------------------------------------------------

    @property
    def filter(self) -> Filter | None:
        return self._filter

    @property
    def inverted(self) -> bool:
        return self._invert

    def set_filter(self, expr: Filter | None, invert: bool = False) -> None:
        self._filter = expr
        self._invert = invert
        self.recompute()

    @property
    def hide_noise(self) -> bool:
        return self._hide_noise

    @hide_noise.setter
    def hide_noise(self, value: bool) -> None:
        if value != self._hide_noise:
            self._hide_noise = value
            self.recompute()

    # -- told by the store -----------------------------------------------------------------

    def exchanges_changed(self, exchanges: Iterable[Exchange]) -> None:
        """Re-evaluate these exchanges (new, or grown since they were last looked at)."""
        connections = self._connections
        for exchange in exchanges:
            conn = connections.get(exchange.key)
            if conn is None:
                continue
            noise = is_noise(exchange)
            if noise != (exchange in self._noise):
                _toggle(self._noise, self._noise_count, exchange, conn.key, noise)
            hidden = not self._exchange_shown(exchange, conn, noise)
            if hidden != (exchange in self._hidden):
                _toggle(self._hidden, self._hidden_count, exchange, conn.key, hidden)

    def connections_changed(self, keys: Iterable[ConnectionKey]) -> bool:
        """Show or hide these connections as their exchanges now say; True if the set of
        visible connections changed."""
        changed = False
        connections = self._connections
        for key in keys:
            conn = connections.get(key)
            if conn is None:
                continue
            shown = self._connection_shown(conn)
            if shown == (key in self._visible):
                continue
            if shown:
                self._visible.add(key)
            else:
                self._visible.discard(key)
            changed = True
        if changed:
            self._visible_cache = None
        return changed

    def exchange_evicted(self, exchange: Exchange, key: ConnectionKey) -> None:
        if exchange in self._hidden:
            _toggle(self._hidden, self._hidden_count, exchange, key, False)
        if exchange in self._noise:
            _toggle(self._noise, self._noise_count, exchange, key, False)

    def connection_evicted(self, conn: Connection) -> bool:
        """Forget ``conn`` and its exchanges; True if it was visible."""
        key = conn.key
        if self._hidden_count.pop(key, 0):
            self._hidden.difference_update(conn.exchanges)
        if self._noise_count.pop(key, 0):
            self._noise.difference_update(conn.exchanges)
        if key not in self._visible:
            return False
        self._visible.discard(key)
        self._visible_cache = None
        return True

    def cleared(self) -> None:
        """The store forgot everything."""
        self._noise.clear()
        self._noise_count.clear()
        self.recompute()

    def recompute(self) -> None:
        """Evaluate every connection again (the filter or the noise switch changed)."""
        self._hidden.clear()
        self._hidden_count.clear()
        self._visible_cache = None
        connections = self._connections
        effective = self._effective_filter()
        if effective is not None:
            for conn in connections.values():
                hidden = [
                    exchange
                    for exchange in conn.exchanges
                    if not self._exchange_shown(exchange, conn, exchange in self._noise)
                ]
                if hidden:
                    self._hidden.update(hidden)
                    self._hidden_count[conn.key] = len(hidden)
        elif self._hide_noise:
            # No filter: what is hidden is the noise, known already.
            self._hidden.update(self._noise)
            self._hidden_count.update(self._noise_count)
        # Every connection is shown but those whose exchanges are all hidden, and, with a
        # filter, those without exchanges it refuses: without one, the noise switch looks at
        # the noisy connections alone (10,000 connections: 10 ms of a keystroke otherwise).
        self._visible = set(connections)
        for key in self._hidden_count:
            hiding = connections.get(key)
            if hiding is not None and not self._connection_shown(hiding):
                self._visible.discard(key)
        if effective is not None:
            for conn in connections.values():
                if not conn.exchanges and not effective.evaluate(conn, None):
                    self._visible.discard(conn.key)

    # -- asked by the screens ----------------------------------------------------------------

    @property
    def hidden(self) -> set[Exchange]:
        """The exchanges the view hides (read it, never change it)."""
        return self._hidden

    def shows(self, connection: Connection) -> bool:
        return connection.key in self._visible

    def visible_connections(self) -> list[Connection]:
        """Connections the filter lets through, newest first."""
        if self._visible_cache is None:
            visible = self._visible
            newest_first = reversed(self._connections.values())
            if len(visible) == len(self._connections):  # all of them, as after most resets
                self._visible_cache = list(newest_first)
            else:
                self._visible_cache = [conn for conn in newest_first if conn.key in visible]
        return list(self._visible_cache)

    def visible_exchanges(self, key: ConnectionKey) -> list[Exchange]:
        conn = self._connections.get(key)
        if conn is None:
            return []
        if not self._hidden_count.get(key):
            return list(conn.exchanges)
        hidden = self._hidden
        return [ex for ex in conn.exchanges if ex not in hidden]

    # -- the rules ---------------------------------------------------------------------------

    def _exchange_shown(self, exchange: Exchange, conn: Connection, noise: bool) -> bool:
        if self._hide_noise and noise:
            return False
        effective = self._effective_filter()
        return effective is None or effective.evaluate(conn, exchange)

    def _effective_filter(self) -> Filter | None:
        if self._filter is None:
            return None
        return Not(self._filter) if self._invert else self._filter

    def _connection_shown(self, conn: Connection) -> bool:
        if conn.exchanges:
            return len(conn.exchanges) > self._hidden_count.get(conn.key, 0)
        effective = self._effective_filter()
        return effective is None or effective.evaluate(conn, None)


def _toggle(
    members: set[Exchange],
    counts: dict[ConnectionKey, int],
    exchange: Exchange,
    key: ConnectionKey,
    member: bool,
) -> None:
    """Add ``exchange`` to ``members`` or take it out, and keep its connection's count."""
    if member:
        members.add(exchange)
        counts[key] = counts.get(key, 0) + 1
    else:
        members.discard(exchange)
        left = counts.get(key, 0) - 1
        if left > 0:
            counts[key] = left
        else:
            counts.pop(key, None)
