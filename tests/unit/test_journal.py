"""The journal: seq stamping, exactly-once resume, loss accounting, bounds, thread hand-off."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.events import (
    AnyEvent,
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    EventsLost,
    Gap,
    Stats,
)
from agent.journal import AppendSignal, Journal
from agent.wire import decode_batch, encode_batch

pytestmark = pytest.mark.timeout(60)


def data(size: int, conn: int = 0) -> DataReceived:
    return DataReceived(ts=1.0, conn=conn, direction="in", data=b"x" * size)


def opened(conn: int) -> ConnectionOpened:
    return ConnectionOpened(
        ts=1.0,
        conn=conn,
        client="198.18.0.1",
        client_port=40000,
        server="198.18.0.2",
        server_port=80,
    )


def read_all(journal: Journal, after: int, max_events: int = 1000) -> list[AnyEvent]:
    out: list[AnyEvent] = []
    while True:
        events = journal.read(after, max_events)
        if not events:
            return out
        out += events
        after = events[-1].seq


def test_append_stamps_consecutive_seqs_from_one() -> None:
    journal = Journal()
    first: list[AnyEvent] = [opened(0), data(3)]
    second: list[AnyEvent] = [data(4), data(5)]
    journal.append(first)
    journal.append(second)
    assert [e.seq for e in first + second] == [1, 2, 3, 4]
    assert (journal.oldest_seq, journal.next_seq, journal.last_seq) == (1, 5, 4)


def test_empty_journal_reads_nothing_and_reports_no_loss() -> None:
    journal = Journal()
    assert journal.read(0) == []
    assert (journal.oldest_seq, journal.next_seq) == (1, 1)


def test_resume_after_any_seq_gets_each_later_event_exactly_once() -> None:
    journal = Journal()
    for batch in range(50):
        journal.append([data(batch % 7, conn=batch) for _ in range(batch % 5 + 1)])
    everything = read_all(journal, 0, max_events=7)
    assert [e.seq for e in everything] == list(range(1, journal.next_seq))
    for cut in (0, 1, 17, 100, journal.last_seq - 1, journal.last_seq):
        resumed = read_all(journal, cut, max_events=3)
        assert [e.seq for e in resumed] == list(range(cut + 1, journal.next_seq))
        assert resumed == everything[cut:]


def test_overflow_by_count_reports_the_exact_number_lost_then_the_oldest_held() -> None:
    journal = Journal(max_events=10)
    journal.append([data(1) for _ in range(25)])
    events = journal.read(0, max_events=100)
    lost = events[0]
    assert isinstance(lost, EventsLost)
    assert (lost.first_seq, lost.count, lost.reason) == (1, 15, "journal")
    assert lost.seq == 15  # the last seq it stands for: resuming after it is not told twice
    assert [e.seq for e in events[1:]] == list(range(16, 26))
    assert journal.read(lost.seq) == events[1:]


def test_partial_loss_counts_only_the_events_actually_dropped() -> None:
    journal = Journal(max_events=10)
    journal.append([data(1) for _ in range(25)])
    lost = journal.read(12, lost_reason="slow-client")[0]
    assert isinstance(lost, EventsLost)
    assert (lost.first_seq, lost.count, lost.reason) == (13, 3, "slow-client")


def test_bounded_by_bytes_of_data() -> None:
    journal = Journal(max_events=1000, max_bytes=1000)
    for _ in range(10):
        journal.append([data(300), opened(1)])
    assert journal.held_bytes <= 1000
    assert journal.held_bytes == 900
    events = journal.read(0, max_events=1000)
    lost = events[0]
    assert isinstance(lost, EventsLost)
    # Held: the last three data events and the opens between them (seq 14..20).
    assert (lost.first_seq, lost.count) == (1, 13)
    assert sum(len(e.data) for e in events if isinstance(e, DataReceived)) == 900


def test_a_batch_is_cut_by_bytes_but_always_carries_one_event() -> None:
    journal = Journal()
    journal.append([data(600), data(600), data(600), data(5000)])
    assert [e.seq for e in journal.read(0, max_bytes=1300)] == [1, 2]
    assert [e.seq for e in journal.read(3, max_bytes=1300)] == [4]


def test_a_cursor_ahead_of_the_journal_waits_for_new_events() -> None:
    journal = Journal()
    journal.append([data(1)])
    assert journal.read(5) == []


@settings(max_examples=200, deadline=None)
@given(
    max_events=st.integers(1, 40),
    max_bytes=st.integers(1, 2000),
    batches=st.lists(st.lists(st.integers(0, 400), max_size=30), max_size=40),
    read_at=st.integers(0, 2000),
    page=st.integers(1, 50),
)
def test_model_the_journal_holds_the_longest_suffix_within_its_bounds(
    max_events: int, max_bytes: int, batches: list[list[int]], read_at: int, page: int
) -> None:
    journal = Journal(max_events=max_events, max_bytes=max_bytes)
    sizes: list[int] = []
    for batch in batches:
        journal.append([data(size) for size in batch])
        sizes += batch
    held = 0
    total = 0
    for size in reversed(sizes):
        if held + 1 > max_events or total + size > max_bytes:
            break
        held += 1
        total += size
    assert journal.held_events == held
    assert journal.held_bytes == total
    oldest = len(sizes) - held + 1
    assert journal.oldest_seq == oldest

    after = min(read_at, len(sizes))
    events = read_all(journal, after, max_events=page)
    expected_lost = max(0, oldest - (after + 1))
    if expected_lost:
        lost = events.pop(0)
        assert isinstance(lost, EventsLost)
        assert (lost.first_seq, lost.count) == (after + 1, expected_lost)
    assert not any(isinstance(e, EventsLost) for e in events)
    assert [e.seq for e in events] == list(range(max(after + 1, oldest), len(sizes) + 1))
    assert [len(e.data) for e in events if isinstance(e, DataReceived)] == sizes[
        max(after, oldest - 1) :
    ]


async def test_signal_coalesces_many_notifications_into_one_wake() -> None:
    loop = asyncio.get_running_loop()
    signal = AppendSignal(loop)
    woken = 0

    async def waiter() -> None:
        nonlocal woken
        while True:
            await signal.wait()
            woken += 1

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)

    def notify_often() -> None:
        for _ in range(1000):
            signal.notify()

    thread = threading.Thread(target=notify_often)
    thread.start()
    thread.join()
    await asyncio.sleep(0.05)
    task.cancel()
    assert woken == 1


async def test_a_reader_on_the_loop_gets_everything_a_capture_thread_appends() -> None:
    journal = Journal(max_events=1_000_000)
    signal = AppendSignal(asyncio.get_running_loop())
    journal.set_listener(signal.notify)
    batches, per_batch = 2000, 50

    def produce() -> None:
        for _ in range(batches):
            journal.append([data(10) for _ in range(per_batch)])

    thread = threading.Thread(target=produce)
    received: list[int] = []
    wakes = 0
    thread.start()
    cursor = 0
    while cursor < batches * per_batch:
        events = journal.read(cursor, max_events=1000)
        if not events:
            await asyncio.wait_for(signal.wait(), 5)
            wakes += 1
            continue
        received += [e.seq for e in events]
        cursor = events[-1].seq
    thread.join()
    assert received == list(range(1, batches * per_batch + 1))
    assert wakes <= batches


def test_journaled_events_stay_out_of_the_cyclic_collector() -> None:
    """Under a flood the capture makes an event per segment: were events allocated by the
    cyclic collector, each would count towards its next young pass, which then walks every
    young object (and older passes the journal). They hold no containers, so they can never be
    part of a cycle: built here or decoded from the wire, none is counted."""
    stats = Stats(
        ts=1.0,
        packets=1,
        bytes=1,
        kernel_packets=1,
        kernel_drops=0,
        open_connections=0,
        gaps=0,
        gap_bytes=0,
    )
    kinds = [
        opened(0),
        data(10),
        Gap(ts=1.0, conn=0, direction="out", length=5),
        ConnectionClosed(ts=1.0, conn=0, reason="fin"),
        stats,
        EventsLost(ts=1.0, first_seq=1, count=1, reason="journal"),
    ]
    message = encode_batch(kinds * 100)
    gc.disable()
    try:
        before = gc.get_count()[0]
        built = [data(10) for _ in range(300)] + [opened(conn) for conn in range(300)]
        decoded = decode_batch(message)
        counted = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert len(built) == len(decoded) == 600
    # The two lists themselves are counted, and a few objects of the interpreter's own.
    assert counted < 20, counted


def test_a_byte_bound_drops_thousands_of_small_events_for_one_large_one() -> None:
    """The sizes of the events dropped are summed in windows that double: past many windows,
    the count and the bytes still come out exact."""
    journal = Journal(max_events=100_000, max_bytes=5_000)
    journal.append([data(1) for _ in range(5_000)])
    journal.append([data(4_000)])
    assert (journal.held_events, journal.held_bytes, journal.oldest_seq) == (1_001, 5_000, 4_001)
    journal.append([data(5_001)])  # larger than the bound: everything goes, itself too
    assert (journal.held_events, journal.held_bytes, journal.oldest_seq) == (0, 0, 5_003)
