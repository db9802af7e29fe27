"""The events the agent emits: the one vocabulary shared by agent, wire, client and recordings.

Every event carries ``seq`` (its place in the agent's journal, stamped by the journal when the
event is appended; 0 for per-client events such as ``Hello`` that are not journaled) and ``ts``
(the capture time, seconds since the epoch). Connection ids (``conn``) are assigned by the agent,
start at 0 and are never reused within one agent process (``Hello.agent_id``).

A node agent (protocol 2) taps several pods at once: ``ConnectionOpened.pod`` names the pod a
connection belongs to, and ``PodTapped``/``PodUntapped``/``PodTapFailed`` say when a pod joins or
leaves the agent's set (at a client's request, see agent/requests.py).

Direction is relative to the tapped service: ``"in"`` flows from the client to the server port
being watched (requests), ``"out"`` from that server back to the client (responses).
"""

from __future__ import annotations

from typing import Literal

from agent.codec import msgspec

PROTOCOL_VERSION = 2
OLDEST_PROTOCOL = 1
"""Clients read agents from this version on: protocol 2 only added events and a field."""

Direction = Literal["in", "out"]
CloseReason = Literal["fin", "rst", "idle", "evicted", "shutdown"]
GapReason = Literal["lost", "mid-stream", "buffer-limit", "memory-limit"]
LostReason = Literal["journal", "slow-client"]


class Event(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of every event. ``seq`` is mutable only so that the journal can stamp it once."""

    seq: int = 0
    ts: float


class Hello(Event, tag="hello"):
    """First message on every stream: who is talking and what the journal holds."""

    protocol: int
    version: str
    agent_id: str
    target: str
    ports: list[int]
    interfaces: list[str]
    oldest_seq: int
    next_seq: int


# gc=False on the events that hold nothing but scalars: they can never be part of a reference
# cycle, and under a flood the capture makes one per segment, each of which would otherwise
# count towards the cyclic collector's next pass (tests/unit/test_journal.py keeps it so).
class ConnectionOpened(Event, tag="open", gc=False):
    conn: int
    client: str
    client_port: int
    server: str
    server_port: int
    interface: str = ""
    mid_stream: bool = False
    pod: str = ""
    """The tapped pod (``NAMESPACE/NAME``) of a node agent; empty for a single-target agent."""


class DataReceived(Event, tag="data", gc=False):
    conn: int
    direction: Direction
    data: bytes


class Gap(Event, tag="gap", gc=False):
    """``length`` bytes of one direction are missing at this point of the stream."""

    conn: int
    direction: Direction
    length: int
    reason: GapReason = "lost"


class ConnectionClosed(Event, tag="close", gc=False):
    conn: int
    reason: CloseReason


class Stats(Event, tag="stats", gc=False):
    """Periodic counters, cumulative since the agent started."""

    packets: int
    bytes: int
    kernel_packets: int
    kernel_drops: int
    open_connections: int
    gaps: int
    gap_bytes: int
    ring_waiting: int = 0
    """Frames the kernel had put in the capture rings that the agent had not read yet: lag while
    it runs, and a loss if it stops now (protocol 2 addition; older agents send none)."""


class EventsLost(Event, tag="lost", gc=False):
    """``count`` events with seq in [first_seq, first_seq + count) will never arrive."""

    first_seq: int
    count: int
    reason: LostReason


class PodTapped(Event, tag="tapped"):
    """A node agent captures ``pod`` from now on; its connections carry its name."""

    pod: str
    interfaces: list[str]


class PodUntapped(Event, tag="untapped"):
    """A node agent stopped capturing ``pod`` (its open connections were closed first)."""

    pod: str
    reason: str


class PodTapFailed(Event, tag="tap-failed"):
    """A node agent could not tap ``pod``; ``reason`` is one sentence."""

    pod: str
    reason: str


AnyEvent = (
    Hello
    | ConnectionOpened
    | DataReceived
    | Gap
    | ConnectionClosed
    | Stats
    | EventsLost
    | PodTapped
    | PodUntapped
    | PodTapFailed
)
