"""The store: every connection and exchange seen, bounded (tui.model.retention), with a filtered
view kept up to date (tui.model.filtered_view).

Fed batches of session updates (values in), it returns what changed (values out), so the app
redraws only that. Connection keys are ``(source, id)``; when an agent restarts (a new
``Hello.agent_id`` for a source) its ids start again at 0, so the store shifts them past every id
it already holds for that source to keep keys unique.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.events import (
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    EventsLost,
    Gap,
    Hello,
    Stats,
)
from tui.model.body_budget import DEFAULT_BODY_BUDGET, BodyBudget
from tui.model.filtered_view import FilteredView
from tui.model.filters import Filter
from tui.model.flows import Connection, ConnectionKey, Exchange
from tui.model.handoff import handoffs_for
from tui.model.headers import HeaderInventory
from tui.model.http import ConnectionDecoder
from tui.model.http1_cache import Http1Cache
from tui.model.http2_headers import Http2HeaderCache
from tui.model.loss import LOST_REASON_WORDS, LossTally
from tui.model.retention import Retention
from tui.model.store_change import StoreChange
from tui.model.updates import (
    AgentEvent,
    SessionNote,
    SourceKind,
    SourceState,
    SourceStatus,
    Update,
)

# StoreChange is part of the store's interface: callers import it from here.
__all__ = ["SourceInfo", "Store", "StoreChange", "StoreStats"]


@dataclass(slots=True)
class SourceInfo:
    state: SourceState = "starting"
    detail: str = ""
    kind: SourceKind = "agent"
    agent_id: str = ""
    target: str = ""
    interfaces: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StoreStats:
    events: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    kernel_drops: int = 0
    lost_events: int = 0
    packets: int = 0


class Store:
    def __init__(
        self,
        max_connections: int = 10_000,
        max_exchanges: int = 100_000,
        body_cap: int = 65_536,
        raw_cap: int = 65_536,
        raw_budget: int = 48 << 20,
        body_budget: int = DEFAULT_BODY_BUDGET,
    ) -> None:
        self.body_cap = body_cap
        self.raw_cap = raw_cap
        self.bodies = BodyBudget(body_budget)
        """Bytes of bodies kept over all exchanges; past it the oldest finished are let go."""
        self.connections: dict[ConnectionKey, Connection] = {}
        self.sources: dict[str, SourceInfo] = {}
        self.stats = StoreStats()
        self.notes: list[str] = []
        self.header_inventory = HeaderInventory()
        self.losses = LossTally()
        """Every loss, by kind and unit, for the status bar and the outputs' summaries."""
        self._decoders: dict[ConnectionKey, ConnectionDecoder] = {}
        # Shared by every connection's decoder: header lines repeat across connections too.
        self._http1_cache = Http1Cache()
        self._handoffs = handoffs_for(body_cap, Http2HeaderCache())
        self._id_offset: dict[str, int] = {}
        self._highest_id: dict[str, int] = {}
        self._kernel_drops: dict[str, int] = {}
        self._packets: dict[str, int] = {}
        self.view = FilteredView(self.connections)
        self._retention = Retention(
            self.connections,
            self._decoders,
            self.bodies,
            self.view,
            max_connections=max_connections,
            max_exchanges=max_exchanges,
            raw_budget=raw_budget,
        )

    # ----------------------------------------------------------------------------- feeding

    def apply(self, updates: Sequence[Update]) -> StoreChange:
        change = StoreChange()
        touched: dict[ConnectionKey, Connection] = {}
        for update in updates:
            if isinstance(update, AgentEvent):
                self._apply_event(update, change, touched)
            elif isinstance(update, SourceStatus):
                info = self.sources.setdefault(update.source, SourceInfo())
                info.state = update.state
                info.detail = update.detail
                info.kind = update.kind
                change.sources_changed = True
                self.losses.observe_status(update)
                if update.state in ("gone", "failed"):
                    # Nothing more will come from it: what its connections had in progress
                    # ends here, incomplete.
                    self._source_lost(
                        update.source,
                        "the agent went away before it ended",
                        change,
                        touched,
                        close=True,
                    )
            elif isinstance(update, SessionNote):
                self.notes.append(update.text)
                change.notes.append(update.text)
        for exchange in change.new_exchanges:
            if exchange.request.http_version == "2":
                # HTTP/2 decoders, started at a hand-off point, tell of requests through the
                # change record alone.
                self.header_inventory.record(exchange.request)
        if change.changed_exchanges:
            new = set(change.new_exchanges)
            change.changed_exchanges = [
                ex for ex in dict.fromkeys(change.changed_exchanges) if ex not in new
            ]
        self._retention.enforce(change)
        self._refresh_view(change, touched)
        # After the view: by then the change holds only exchanges still in the store.
        change.changed_exchanges += self.bodies.account(
            itertools.chain(change.new_exchanges, change.changed_exchanges)
        )
        return change

    def _apply_event(
        self, update: AgentEvent, change: StoreChange, touched: dict[ConnectionKey, Connection]
    ) -> None:
        event = update.event
        source = update.source
        self.stats.events += 1
        if isinstance(event, DataReceived):
            conn = self._connection_for(source, event.conn, event.ts, change)
            if conn is None:
                return
            decoder = self._decoders[conn.key]
            before = len(conn.exchanges)
            raw_before = len(conn.raw_in) + len(conn.raw_out)
            decoder.feed(event.direction, event.data, event.ts, change)
            self._retention.fed(conn, before, raw_before)
            touched[conn.key] = conn
        elif isinstance(event, ConnectionOpened):
            self._open(source, event, change, touched)
        elif isinstance(event, Gap):
            self.stats.gaps += 1
            self.stats.gap_bytes += event.length
            change.stats_changed = True
            conn = self._connection_for(source, event.conn, event.ts, change)
            if conn is None:
                return
            self._decoders[conn.key].gap(event.direction, event.length, event.ts, change)
            touched[conn.key] = conn
        elif isinstance(event, ConnectionClosed):
            key = self._key(source, event.conn)
            conn = self.connections.get(key)
            if conn is None:
                return
            conn.closed = event.ts
            conn.close_reason = event.reason
            before = len(conn.exchanges)
            self._decoders[key].close(event.ts, change)
            self._retention.exchanges_added(conn, before)
            touched[key] = conn
        elif isinstance(event, Stats):
            self.losses.observe_event(source, event)
            self._kernel_drops[source] = event.kernel_drops
            self._packets[source] = event.packets
            self.stats.kernel_drops = sum(self._kernel_drops.values())
            self.stats.packets = sum(self._packets.values())
            change.stats_changed = True
        elif isinstance(event, EventsLost):
            self.stats.lost_events += event.count
            self.losses.observe_event(source, event)
            change.stats_changed = True
            why = LOST_REASON_WORDS.get(event.reason, event.reason)
            self._source_lost(
                source,
                f"bytes may be missing: {event.count:,} events were lost ({why})",
                change,
                touched,
                close=False,
            )
        elif isinstance(event, Hello):
            self.losses.observe_event(source, event)
            info = self.sources.setdefault(source, SourceInfo())
            if info.agent_id and info.agent_id != event.agent_id:
                # The old agent's connections end with it: the new one numbers its own.
                self._source_lost(
                    source, "the agent restarted before it ended", change, touched, close=True
                )
                self._id_offset[source] = self._highest_id.get(source, -1) + 1
            info.agent_id = event.agent_id
            info.target = event.target
            info.interfaces = list(event.interfaces)
            change.sources_changed = True

    def _source_lost(
        self,
        source: str,
        note: str,
        change: StoreChange,
        touched: dict[ConnectionKey, Connection],
        *,
        close: bool,
    ) -> None:
        """Tell the decoders of ``source``'s open connections that bytes were lost, in which
        of them the agent cannot say; ``close`` ends them (no more events will come)."""
        for key, conn in self.connections.items():
            if conn.source != source or conn.closed is not None:
                continue
            ts = max(conn.last_seen, conn.opened)
            before = len(conn.exchanges)
            decoder = self._decoders[key]
            decoder.lost(note, ts, change)
            if close:
                conn.closed = ts
                conn.close_reason = "agent gone"
                decoder.close(ts, change)
            self._retention.exchanges_added(conn, before)
            touched[key] = conn

    def _key(self, source: str, conn_id: int) -> ConnectionKey:
        return (source, self._id_offset.get(source, 0) + conn_id)

    def _open(
        self,
        source: str,
        event: ConnectionOpened,
        change: StoreChange,
        touched: dict[ConnectionKey, Connection],
    ) -> None:
        key = self._key(source, event.conn)
        if key in self.connections:
            return
        self._retention.readmit(key)
        conn = Connection(
            key=key,
            source=source,
            conn=key[1],
            client=event.client,
            client_port=event.client_port,
            server=event.server,
            server_port=event.server_port,
            opened=event.ts,
            interface=event.interface,
            mid_stream=event.mid_stream,
            last_seen=event.ts,
        )
        self._add_connection(conn, change)
        touched[key] = conn

    def _connection_for(
        self, source: str, conn_id: int, ts: float, change: StoreChange
    ) -> Connection | None:
        """The connection an event belongs to; one whose opening we missed is made up."""
        key = self._key(source, conn_id)
        conn = self.connections.get(key)
        if conn is not None:
            return conn
        if self._retention.evicted(key):
            return None
        conn = Connection(
            key=key,
            source=source,
            conn=key[1],
            client="?",
            client_port=0,
            server="?",
            server_port=0,
            opened=ts,
            mid_stream=True,
            last_seen=ts,
        )
        self._add_connection(conn, change)
        return conn

    def _add_connection(self, conn: Connection, change: StoreChange) -> None:
        self.connections[conn.key] = conn
        self._decoders[conn.key] = ConnectionDecoder(
            conn,
            body_cap=self.body_cap,
            raw_cap=self.raw_cap,
            on_request=self._on_request,
            cache=self._http1_cache,
            handoffs=self._handoffs,
        )
        self._highest_id[conn.source] = max(self._highest_id.get(conn.source, -1), conn.key[1])
        change.new_connections.append(conn.key)

    def _on_request(self, exchange: Exchange) -> None:
        self.header_inventory.record(exchange.request)

    # ----------------------------------------------------------------------------- the view

    def _refresh_view(self, change: StoreChange, touched: dict[ConnectionKey, Connection]) -> None:
        for key in touched:
            if key in self.connections:
                change.changed_connections.add(key)
        self.view.exchanges_changed(itertools.chain(change.new_exchanges, change.changed_exchanges))
        if self.view.connections_changed(change.changed_connections):
            change.view_changed = True
        live = self.connections
        change.new_connections = [key for key in change.new_connections if key in live]
        if change.removed_connections:
            change.new_exchanges = [ex for ex in change.new_exchanges if ex.key in live]
            change.changed_exchanges = [ex for ex in change.changed_exchanges if ex.key in live]

    # The view's own interface, kept here for the screens and outputs that ask the store.

    def set_filter(self, expr: Filter | None, invert: bool = False) -> None:
        self.view.set_filter(expr, invert)

    @property
    def filter(self) -> Filter | None:
        return self.view.filter

    @property
    def inverted(self) -> bool:
        return self.view.inverted

    @property
    def hide_noise(self) -> bool:
        return self.view.hide_noise

    @hide_noise.setter
    def hide_noise(self, value: bool) -> None:
        self.view.hide_noise = value

    def visible_connections(self) -> list[Connection]:
        """Connections the filter lets through, newest first."""
        return self.view.visible_connections()

    def visible_exchanges(self, key: ConnectionKey) -> list[Exchange]:
        return self.view.visible_exchanges(key)

    def visible_exchanges_in_order(self) -> list[Exchange]:
        """Every exchange the filter lets through, across connections, oldest first.

        One pass over the order the caps keep (tui.model.retention), no sort.
        """
        return self._retention.held_in_order(self.view.hidden)

    def matches(self, connection: Connection) -> bool:
        return self.view.shows(connection)

    def get(self, key: ConnectionKey) -> Connection | None:
        return self.connections.get(key)

    @property
    def exchange_count(self) -> int:
        return self._retention.exchange_count

    @property
    def dropped_connections(self) -> int:
        return self._retention.dropped_connections

    @property
    def dropped_exchanges(self) -> int:
        return self._retention.dropped_exchanges

    def clear(self) -> None:
        """Forget every connection and exchange.

        A live connection that sends more afterwards comes back as a mid-stream one.
        """
        self.connections.clear()
        for decoder in self._decoders.values():
            decoder.release()
        self._decoders.clear()
        self._retention.clear()
        self.bodies.clear()
        self.header_inventory = HeaderInventory()
        self.notes.clear()
        self.view.cleared()
