"""ResumeCursor, the sans-IO core of resuming: whatever the agent re-sends, each journaled event
is delivered once, in order; per-client events always pass; losses move the cursor on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.events import AnyEvent, DataReceived, EventsLost, Hello
from tui.sources.stream import ResumeCursor, events_path

pytestmark = pytest.mark.timeout(60)


def data(seq: int) -> DataReceived:
    return DataReceived(seq=seq, ts=0.0, conn=0, direction="in", data=b"x")


def hello(agent_id: str) -> Hello:
    return Hello(
        ts=0.0,
        protocol=1,
        version="t",
        agent_id=agent_id,
        target="host",
        ports=[80],
        interfaces=[],
        oldest_seq=1,
        next_seq=1,
    )


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=30))
def test_overlapping_redeliveries_yield_each_event_once_in_order(
    windows: list[tuple[int, int]],
) -> None:
    """Each reconnection re-sends some window [start, end] of the journal (the agent may
    repeat what was delivered); what comes out is exactly 1..max, once each, in order."""
    cursor = ResumeCursor()
    cursor.greet(hello("a"))
    delivered: list[int] = []
    for first, last in windows:
        start = min(first, cursor.last_seq + 1)  # a resume never starts past the cursor + 1
        batch: list[AnyEvent] = [data(seq) for seq in range(max(start, 1), last + 1)]
        delivered += [event.seq for event in cursor.admit(batch)]
    assert delivered == list(range(1, len(delivered) + 1))


def test_per_client_events_always_pass() -> None:
    cursor = ResumeCursor()
    cursor.greet(hello("a"))
    assert cursor.admit([data(1), data(2)]) == [data(1), data(2)]
    again = [hello("a"), data(2), data(3)]
    assert cursor.admit(again) == [hello("a"), data(3)]


def test_lost_events_are_skipped_whichever_seq_the_notice_has() -> None:
    for notice_seq in (0, 9):
        cursor = ResumeCursor()
        cursor.greet(hello("a"))
        cursor.admit([data(1)])
        lost = EventsLost(seq=notice_seq, ts=0.0, first_seq=2, count=8, reason="journal")
        assert cursor.admit([lost, data(10)]) == [lost, data(10)]
        assert cursor.last_seq == 10
        assert cursor.path() == "/v1/events?after=10&agent=a"


def test_a_new_agent_id_starts_over() -> None:
    cursor = ResumeCursor()
    assert cursor.path() == events_path(0, None) == "/v1/events?after=0"
    assert not cursor.greet(hello("a"))
    cursor.admit([data(1), data(2), data(3)])
    assert not cursor.greet(hello("a"))
    assert cursor.last_seq == 3
    assert cursor.greet(hello("b"))
    assert cursor.last_seq == 0
    assert cursor.admit([data(1)]) == [data(1)]
