"""The capture thread that feeds the journal (agent.sniffer), with a scripted segment source
and the real reassembler."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from agent.errors import UserError
from agent.events import AnyEvent, ConnectionClosed, ConnectionOpened, DataReceived, Stats
from agent.journal import Journal
from agent.packet import ACK, SYN, Frame, Segment, frame_of
from agent.sniffer import Sniffer
from agent.tcp import Reassembler

pytestmark = pytest.mark.timeout(20)

CLIENT, SERVER = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])


class ScriptedSource:
    """Hands out prepared batches, then nothing (waiting like a quiet capture socket)."""

    def __init__(self, batches: list[list[tuple[float, str, Segment]]]) -> None:
        self._batches = batches
        self.reads = 0
        self.fail_with: BaseException | None = None

    def read_frames(self, timeout: float) -> list[Frame]:
        self.reads += 1
        if self.fail_with is not None:
            raise self.fail_with
        if self._batches:
            return [frame_of(*captured) for captured in self._batches.pop(0)]
        time.sleep(min(timeout, 0.01))
        return []

    def kernel_counters(self) -> tuple[int, int]:
        return 1234, 5

    def waiting(self) -> int:
        return 0


def handshake_and_request(now: float) -> list[tuple[float, str, Segment]]:
    return [
        (now, "veth0", Segment(CLIENT, 40000, SERVER, 80, 1000, 0, SYN, b"")),
        (now, "veth0", Segment(SERVER, 80, CLIENT, 40000, 5000, 1001, SYN | ACK, b"")),
        (
            now,
            "veth0",
            Segment(CLIENT, 40000, SERVER, 80, 1001, 5001, ACK, b"GET / HTTP/1.1\r\n\r\n"),
        ),
    ]


def wait_for(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def everything(journal: Journal) -> list[AnyEvent]:
    return journal.read(0, max_events=1_000_000)


def test_segments_become_journaled_events_and_stop_closes_what_is_open() -> None:
    journal = Journal()
    source = ScriptedSource([handshake_and_request(time.time())])
    sniffer = Sniffer(source, Reassembler(frozenset({80})), journal, stats_interval=60)
    sniffer.start()
    wait_for(lambda: journal.last_seq >= 2)
    sniffer.stop()
    assert not sniffer.running
    events = everything(journal)
    assert isinstance(events[0], ConnectionOpened)
    data = events[1]
    assert isinstance(data, DataReceived)
    assert data.data == b"GET / HTTP/1.1\r\n\r\n"
    closed = events[-2]
    assert isinstance(closed, ConnectionClosed)
    assert closed.reason == "shutdown"
    stats = events[-1]
    assert isinstance(stats, Stats)
    assert (stats.packets, stats.bytes) == (3, 18)
    assert (stats.kernel_packets, stats.kernel_drops) == (1234, 5)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_stats_come_about_once_per_interval() -> None:
    journal = Journal()
    sniffer = Sniffer(ScriptedSource([]), Reassembler(frozenset({80})), journal, stats_interval=0.1)
    sniffer.start()
    time.sleep(0.55)
    sniffer.stop()
    stats = [e for e in everything(journal) if isinstance(e, Stats)]
    assert 4 <= len(stats) <= 7  # five ticks, plus the last one on stop


def test_a_failing_capture_is_reported_once_and_the_thread_ends() -> None:
    journal = Journal()
    source = ScriptedSource([])
    source.fail_with = UserError("The capture socket went away.")
    reported: list[BaseException] = []
    done = threading.Event()

    def on_failure(error: BaseException) -> None:
        reported.append(error)
        done.set()

    sniffer = Sniffer(source, Reassembler(frozenset({80})), journal, on_failure=on_failure)
    sniffer.start()
    assert done.wait(5)
    sniffer.stop()
    assert reported == [source.fail_with]
    assert sniffer.failure is source.fail_with
    assert source.reads == 1
