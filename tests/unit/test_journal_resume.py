"""Resuming a stream from the journal while it fills and drops: whatever the cuts, every event
reaches the client exactly once, or falls inside exactly one EventsLost, in seq order.

The client is modelled as the server sees it (agent.server: read after the cursor, send,
move the cursor to the batch's last seq) and as a websocket cut delivers it: batches still in
flight when the connection is aborted never arrive, and the client resumes after the last seq
it did receive.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.events import AnyEvent, DataReceived, EventsLost
from agent.journal import Journal

pytestmark = pytest.mark.timeout(60)


def marked(index: int, size: int) -> DataReceived:
    """An event that says which append it was, whatever seq it is given."""
    return DataReceived(ts=float(index), conn=index, direction="in", data=b"x" * size)


@dataclass
class Client:
    """What one client has received: each seq once, either as an event or inside a loss."""

    last_seq: int = 0
    events: dict[int, AnyEvent] = field(default_factory=dict)
    lost: list[range] = field(default_factory=list)

    def receive(self, batch: Sequence[AnyEvent]) -> None:
        for event in batch:
            if isinstance(event, EventsLost):
                assert event.first_seq == self.last_seq + 1
                assert event.count >= 1
                assert event.seq == event.first_seq + event.count - 1
                self.lost.append(range(event.first_seq, event.seq + 1))
            else:
                assert event.seq == self.last_seq + 1, (event.seq, self.last_seq)
                self.events[event.seq] = event
            self.last_seq = event.seq


@dataclass
class Stream:
    """One websocket: the server's cursor and the batches sent but not yet received."""

    cursor: int
    in_flight: list[list[AnyEvent]] = field(default_factory=list)


Operation = tuple[str, int, int]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 30), st.integers(0, 300)),
        st.tuples(st.just("send"), st.integers(1, 20), st.integers(1, 2000)),
        st.tuples(st.just("receive"), st.integers(1, 4), st.just(0)),
        st.tuples(st.just("abort"), st.just(0), st.just(0)),
        st.tuples(st.just("close"), st.just(0), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(
    max_events=st.integers(1, 50),
    max_bytes=st.integers(1, 3000),
    steps=operations,
    random=st.randoms(use_true_random=False),
)
def test_every_event_once_or_inside_one_loss_across_cuts(
    max_events: int, max_bytes: int, steps: list[Operation], random: Random
) -> None:
    journal = Journal(max_events=max_events, max_bytes=max_bytes)
    appended: list[DataReceived] = []
    client = Client()
    stream = Stream(cursor=0)
    for kind, first, second in steps:
        if kind == "append":
            new = [marked(len(appended) + i, random.randint(0, second)) for i in range(first)]
            appended += new
            journal.append(new)
        elif kind == "send":
            events = journal.read(stream.cursor, first, second)
            if events:
                stream.in_flight.append(events)
                stream.cursor = events[-1].seq
        elif kind == "receive":
            for batch in stream.in_flight[:first]:
                client.receive(batch)
            del stream.in_flight[:first]
        else:
            if kind == "close":  # a closing handshake: what was sent arrives first
                for batch in stream.in_flight:
                    client.receive(batch)
            stream = Stream(cursor=client.last_seq)  # the client resumes after what it has
    # At the end the client keeps up until nothing is left.
    for batch in stream.in_flight:
        client.receive(batch)
    while events := journal.read(client.last_seq, 7, 500):
        client.receive(events)

    assert client.last_seq == len(appended) == journal.last_seq
    covered = sorted([*client.events, *(seq for lost in client.lost for seq in lost)])
    assert covered == list(range(1, len(appended) + 1))
    for seq, event in client.events.items():
        assert event is appended[seq - 1]


def test_a_reader_resuming_anywhere_while_a_thread_appends_and_drops() -> None:
    """The capture thread appends bursts into a small journal (dropping in bulk) while a
    reader reads, is cut with batches in flight and resumes, again and again."""
    journal = Journal(max_events=300, max_bytes=20_000)
    appended: list[DataReceived] = []
    done = threading.Event()

    def capture() -> None:
        random = Random(7)
        for burst in range(3000):
            batch = [marked(len(appended) + i, random.randint(0, 200)) for i in range(burst % 97)]
            appended.extend(batch)
            journal.append(batch)
        done.set()

    thread = threading.Thread(target=capture)
    thread.start()
    random = Random(11)
    client = Client()
    cursor = 0
    in_flight: list[list[AnyEvent]] = []
    while not done.is_set() or cursor < journal.last_seq:
        events = journal.read(cursor, random.randint(1, 200), random.randint(1, 30_000))
        if events:
            in_flight.append(events)
            cursor = events[-1].seq
        if random.random() < 0.3:
            for batch in in_flight:
                client.receive(batch)
            in_flight.clear()
        elif random.random() < 0.05:
            in_flight.clear()  # the websocket was aborted: those batches never arrive
            cursor = client.last_seq
    thread.join()
    for batch in in_flight:
        client.receive(batch)
    while events := journal.read(client.last_seq):
        client.receive(events)

    assert client.last_seq == len(appended)
    covered = sorted([*client.events, *(seq for lost in client.lost for seq in lost)])
    assert covered == list(range(1, len(appended) + 1))
    assert all(event is appended[seq - 1] for seq, event in client.events.items())
    assert client.lost  # the journal was far too small for the bursts: losses were told
