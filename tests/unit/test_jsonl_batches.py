"""JSON lines written a batch at a time are the lines written one event at a time, byte for byte:
``podtap open`` and every recording already written read that form."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

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
    Hello,
    PodTapFailed,
    PodTapped,
    PodUntapped,
    Stats,
)
from tui.model.updates import AgentEvent, SessionNote, SourceStatus, Update
from tui.output.jsonl import JsonLinesWriter, decode_line, encode_line, encode_lines

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

pytestmark = pytest.mark.timeout(60)


def one_at_a_time(updates: list[Update]) -> bytes:
    return b"".join(
        encode_line(update.source, update.event)
        for update in updates
        if isinstance(update, AgentEvent)
    )


def every_kind(seq: int, text: str, data: bytes) -> list[AnyEvent]:
    """One event of each type, ``text`` in every string field that takes any text."""
    return [
        Hello(
            ts=1.5,
            protocol=2,
            version="0.1.0",
            agent_id=text,
            target=f"netns/{text}",
            ports=[8080],
            interfaces=[text, "eth0"],
            oldest_seq=1,
            next_seq=seq,
        ),
        ConnectionOpened(
            seq=seq,
            ts=1764612000.123456,
            conn=7,
            client="fd00::1",
            client_port=51234,
            server="10.0.0.2",
            server_port=8080,
            interface=text,
            pod=text,
        ),
        DataReceived(seq=seq + 1, ts=2.0, conn=7, direction="in", data=data),
        DataReceived(seq=seq + 2, ts=2.25, conn=7, direction="out", data=b""),
        Gap(seq=seq + 3, ts=3.0, conn=7, direction="out", length=1460, reason="buffer-limit"),
        ConnectionClosed(seq=seq + 4, ts=4.0, conn=7, reason="rst"),
        Stats(
            seq=seq + 5,
            ts=5.0,
            packets=10**12,
            bytes=3,
            kernel_packets=4,
            kernel_drops=5,
            open_connections=6,
            gaps=7,
            gap_bytes=8,
            ring_waiting=9,
        ),
        EventsLost(seq=seq + 6, ts=6.0, first_seq=1, count=seq, reason="slow-client"),
        PodTapped(seq=seq + 7, ts=7.0, pod=text, interfaces=[text]),
        PodUntapped(seq=seq + 8, ts=8.0, pod="ns/a", reason=text),
        PodTapFailed(seq=seq + 9, ts=9.0, pod="ns/b", reason=text),
    ]


TEXTS = ["plain", "with } a brace", "}\n{", 'a "quote" \\ and }}', "ünï}cødé \u2028", ""]
DATA = [b"GET / HTTP/1.1\r\n\r\n", b"}\n" * 40, b"\x00\xff}{\n", bytes(range(256))]


def test_a_batch_of_every_kind_of_event_from_several_sources_is_the_same_bytes() -> None:
    updates: list[Update] = [SourceStatus("ns/pod-a", "live", "Connected.")]
    for number, text in enumerate(TEXTS):
        for data in DATA:
            # Sources take turns in runs of a few events, as the fan-in merges them.
            source = ["ns/pod-a", "ns/pod-b", 'odd "source" }'][number % 3]
            updates += [AgentEvent(source, event) for event in every_kind(number, text, data)]
            updates.append(SessionNote("a note between batches"))
    # Long enough to be encoded in several pieces.
    updates += [
        AgentEvent("local", DataReceived(seq=n, ts=n / 3, conn=n % 64, direction="in", data=b"x"))
        for n in range(1, 1200)
    ]
    lines = encode_lines(updates)
    assert lines == one_at_a_time(updates)
    events = [update for update in updates if isinstance(update, AgentEvent)]
    assert [decode_line(line) for line in lines.splitlines()] == [
        (update.source, update.event) for update in events
    ]


def test_the_writer_writes_a_batch_once_and_nothing_for_a_batch_without_events() -> None:
    class Counting(io.BytesIO):
        writes = 0

        def write(self, data: ReadableBuffer) -> int:
            self.writes += 1
            return super().write(data)

    stream = Counting()
    writer = JsonLinesWriter(stream)
    writer.write([SourceStatus("local", "live"), SessionNote("nothing to write")])
    assert stream.writes == 0
    events = every_kind(1, "}", b"}\n")
    writer.write([AgentEvent("local", event) for event in events])
    assert stream.writes == 1
    assert stream.getvalue() == one_at_a_time([AgentEvent("local", event) for event in events])
    assert writer.bytes_written == len(stream.getvalue())


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["local", "ns/a", "}"]),
            st.integers(0, 10**6),
            st.text(max_size=12),
            st.binary(max_size=40),
        ),
        max_size=40,
    )
)
def test_any_batch_is_the_same_bytes_one_event_at_a_time(
    items: list[tuple[str, int, str, bytes]],
) -> None:
    updates: list[Update] = [
        AgentEvent(source, event)
        for source, seq, text, data in items
        for event in every_kind(seq, text, data)[seq % 11 :][:3]
    ]
    assert encode_lines(updates) == one_at_a_time(updates)
