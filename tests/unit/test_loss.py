"""Losses: counted with their units, told to the decoder, said on stderr and in a HAR."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agent.events import (
    AnyEvent,
    ConnectionOpened,
    DataReceived,
    EventsLost,
    Gap,
    Hello,
    Stats,
)
from tui.commands.catch_up import CatchUp
from tui.commands.live_capture import StatusReporter
from tui.model.loss import LossTally
from tui.model.store import Store
from tui.model.updates import AgentEvent, SourceStatus, Update
from tui.output.jsonl import RecordingHeader
from tui.output.recording import Recording

pytestmark = pytest.mark.timeout(10)


def hello(agent_id: str = "a1") -> Hello:
    return Hello(
        ts=0.0,
        protocol=1,
        version="t",
        agent_id=agent_id,
        target="host",
        ports=[80],
        interfaces=["lo"],
        oldest_seq=1,
        next_seq=1,
    )


def stats(ts: float = 1.0, drops: int = 0, gaps: int = 0, gap_bytes: int = 0) -> Stats:
    return Stats(
        ts=ts,
        packets=100,
        bytes=1000,
        kernel_packets=100,
        kernel_drops=drops,
        open_connections=1,
        gaps=gaps,
        gap_bytes=gap_bytes,
    )


def lost(count: int, ts: float = 1.0, reason: str = "slow-client") -> EventsLost:
    return EventsLost(ts=ts, first_seq=1, count=count, reason=reason)  # type: ignore[arg-type]


def opened(conn: int = 0) -> ConnectionOpened:
    return ConnectionOpened(
        ts=1.0,
        conn=conn,
        client="10.0.0.1",
        client_port=40000 + conn,
        server="10.0.0.2",
        server_port=80,
    )


def data(direction: str, payload: bytes, conn: int = 0, ts: float = 1.0) -> DataReceived:
    return DataReceived(ts=ts, conn=conn, direction=direction, data=payload)  # type: ignore[arg-type]


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: shop.example\r\n\r\n".encode()


def ok(body: bytes = b"ok") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def batch(*events: AnyEvent, source: str = "local") -> list[Update]:
    return [AgentEvent(source, event) for event in events]


# ----------------------------------------------------------------------------- the tally


def test_each_loss_is_counted_in_its_own_unit_and_a_restart_adds_up() -> None:
    tally = LossTally()
    assert (tally.summary(), tally.short(), tally.anything) == ("nothing lost", "", False)
    tally.observe(batch(hello("a1"), stats(drops=120, gaps=2, gap_bytes=300), lost(373_398)))
    tally.observe(batch(lost(2, reason="journal"), stats(drops=150, gaps=3, gap_bytes=400)))
    # A restarted agent counts from zero again: its counts add to the old one's.
    tally.observe(batch(hello("a2"), stats(drops=5)))
    assert tally.summary() == (
        "lost ~2 events (journal overrun), ~373,398 events (slow client), "
        "155 packets dropped by the kernel, 3 gaps in TCP streams (400 bytes not captured)"
    )
    assert tally.short() == "lost ~373k events, 155 pkts, 3 gaps"


def test_what_the_capture_had_not_read_when_the_agent_last_said_is_in_the_summary() -> None:
    tally = LossTally()
    busy = stats()
    busy.ring_waiting = 40_000
    tally.observe([AgentEvent("local", hello()), AgentEvent("local", busy)])
    assert "~40,000 packets captured but not yet read by the agents" in tally.summary()
    assert tally.short() == ""  # lag while it runs, not a loss: the status bar keeps quiet
    tally.observe([AgentEvent("local", stats(ts=2.0))])  # caught up: the latest word counts
    assert (tally.summary(), tally.anything) == ("nothing lost", False)


def test_an_agent_gone_after_it_was_live_is_a_loss_one_that_never_started_is_not() -> None:
    tally = LossTally()
    tally.observe([SourceStatus("ns/never", "failed", "Image pull failed.")])
    assert not tally.anything
    tally.observe([SourceStatus("ns/web-1", "live"), SourceStatus("ns/web-1", "gone", "Gone.")])
    assert tally.summary() == "lost the stream of ns/web-1 (the agent went away)"


# ----------------------------------------------------------------------------- the decoder


def exchanges(store: Store) -> list[tuple[str, str, int | None, bool]]:
    conn = store.connections[("local", 0)]
    return [
        (ex.request.method, ex.request.target, ex.status, ex.incomplete) for ex in conn.exchanges
    ]


def test_lost_events_end_what_was_in_progress_and_nothing_is_joined_across_them() -> None:
    store = Store()
    store.apply(
        batch(
            hello(),
            opened(),
            data("in", get("/a")),
            data("out", ok()),
            data("in", get("/b") + b"GET /c HT"),
        )
    )
    store.apply(batch(lost(5)))
    # "TP/1.1..." after the hole would complete "GET /c HT" if joined: it must not be.
    store.apply(
        batch(
            data("in", b"TP/1.1\r\nHost: x\r\n\r\n"),
            data("out", ok()),
            data("in", get("/d")),
            data("out", ok()),
        )
    )
    assert exchanges(store) == [
        ("GET", "/a", 200, False),
        ("GET", "/b", None, True),  # its response may have been lost: it stops waiting
        ("", "", 200, True),  # a response whose request is not known
        ("GET", "/d", 200, False),
    ]
    b = store.connections[("local", 0)].exchanges[1]
    assert b.notes == ["bytes may be missing: 5 events were lost (slow client)"]
    assert store.losses.summary() == "lost ~5 events (slow client)"


def test_a_gap_is_noted_on_the_exchange_it_cuts() -> None:
    store = Store()
    store.apply(batch(hello(), opened(), data("in", get("/a")), data("out", ok()[:-1])))
    store.apply(batch(Gap(ts=1.0, conn=0, direction="out", length=1)))
    (exchange,) = store.connections[("local", 0)].exchanges
    assert exchange.incomplete
    assert exchange.notes == ["1 bytes of the response were not captured (a gap in the TCP stream)"]


def test_an_agent_gone_or_restarted_ends_its_open_connections_incomplete() -> None:
    store = Store()
    store.apply(
        [SourceStatus("local", "live"), *batch(hello(), opened(), data("in", get("/slow")))]
    )
    store.apply([SourceStatus("local", "gone", "The agent exited.")])
    conn = store.connections[("local", 0)]
    assert conn.closed is not None
    assert [(ex.incomplete, ex.notes) for ex in conn.exchanges] == [
        (True, ["the agent went away before it ended"])
    ]
    store.apply(batch(hello("a1"), opened(1), data("in", get("/x"), conn=1)))
    store.apply(batch(hello("a2")))
    (restarted,) = store.connections[("local", 1)].exchanges
    assert restarted.notes == ["the agent restarted before it ended"]


# ----------------------------------------------------------------------------- stderr


def test_lost_events_are_said_as_they_happen_at_most_a_line_a_second_and_summed() -> None:
    stderr = io.StringIO()
    reporter = StatusReporter(stderr)
    reporter.report(batch(hello(), lost(100, ts=10.0)))
    reporter.report(batch(lost(50, ts=10.2), lost(25, ts=10.4)))  # within the second: held
    reporter.report(batch(stats(ts=11.0, gaps=2, gap_bytes=1500)))  # Stats: said now
    reporter.report(batch(lost(7, ts=11.1, reason="journal")))
    reporter.finish()
    assert stderr.getvalue().splitlines()[1:] == [
        "podtap: lost ~100 events (slow client; ~100 in all): what they carried will never "
        "reach the output.",
        "podtap: 2 gaps in TCP streams (1,500 bytes not captured; 2 gaps in all): the exchanges "
        "around them are marked incomplete.",
        "podtap: lost ~75 events (slow client; ~175 in all): what they carried will never "
        "reach the output.",
        "podtap: lost ~7 events (journal overrun; ~182 in all): what they carried will never "
        "reach the output.",
    ]
    assert reporter.losses.summary() == (
        "lost ~7 events (journal overrun), ~175 events (slow client), "
        "2 gaps in TCP streams (1,500 bytes not captured)"
    )


# ----------------------------------------------------------------------------- HAR


def test_a_har_says_what_was_lost_in_its_log_and_on_the_entries_next_to_it(tmp_path: Path) -> None:
    path = tmp_path / "lossy.har"
    header = RecordingHeader(podtap="t", target="netns/shop", ports=[80])
    with Recording(path, header) as recording:
        recording.write(
            [
                SourceStatus("local", "live"),
                *batch(
                    hello(),
                    opened(),
                    data("in", get("/a")),
                    data("out", ok()),
                    data("in", get("/b")),
                    lost(9),
                    data("in", get("/c")),
                ),
            ]
        )
        recording.flush()
        # Until it is final, an entry says it may still change (should podtap be killed).
        pending = json.loads(path.read_bytes())["log"]["entries"][-1]
        assert pending["comment"].endswith("still in progress when the file was written")
    log = json.loads(path.read_bytes())["log"]
    assert log["comment"] == "podtap record netns/shop on ports 80; lost ~9 events (slow client)"
    by_url = {entry["request"]["url"][-2:]: entry for entry in log["entries"]}
    assert "comment" not in by_url["/a"]
    assert by_url["/b"]["_incomplete"]
    assert "9 events were lost (slow client)" in by_url["/b"]["comment"]
    # Still waiting when the recording ended: final now, and it says so.
    assert "the recording ended before this exchange did" in by_url["/c"]["comment"]


def test_a_har_entry_waits_for_an_upload_the_server_answered_early(tmp_path: Path) -> None:
    """``Expect: 100-continue``, then a response before the 2 MB body is all sent: the entry
    is written once the request is complete, with its whole size."""
    path = tmp_path / "upload.har"
    body = bytes(2_000_000)
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Length: 2000000\r\n\r\n"
    )
    with Recording(path, RecordingHeader(podtap="t", target="host", ports=[80])) as recording:
        recording.write(
            batch(
                hello(),
                opened(),
                data("in", head),
                data("out", b"HTTP/1.1 100 Continue\r\n\r\n"),
                data("in", body[:838_912]),
                data("out", ok()),
            )
        )
        recording.flush()  # answered, but the upload goes on: not final yet
        for start in range(838_912, len(body), 65_536):
            recording.write(batch(data("in", body[start : start + 65_536])))
        recording.flush()
    (entry,) = json.loads(path.read_bytes())["log"]["entries"]
    assert entry["request"]["bodySize"] == 2_000_000
    assert "comment" not in entry


# ----------------------------------------------------------------------------- the drain


def test_catching_up_after_a_stop_and_what_is_said_when_it_could_not() -> None:
    catch_up = CatchUp()
    for step in range(11):  # 100 exchanges per 0.1 s of capture
        event = data("in", b"x", ts=100.0 + step / 10)
        event.seq = step + 1
        catch_up.saw(batch(event), written=step * 100)
    catch_up.ask(103.0)
    assert not catch_up.caught_up()
    catch_up.stopped_by = "SIGINT"  # a second Ctrl+C
    assert catch_up.unwritten() == (
        "stopped before the agents had sent everything: ~2,000 exchanges at the rate seen last "
        "(about the last 2.0 s of capture before the stop) were not written."
    )
    catch_up.stopped_by = "idle"  # nothing came for a while, and no agent said it held more
    assert catch_up.unwritten() == ""
    catch_up.stopped_by = "SIGINT"
    # An agent that said how far its journal was: what it held, exactly.
    where = hello()
    where.next_seq = 5012
    catch_up.saw(batch(where), written=1000)
    assert catch_up.unwritten() == (
        "stopped before the agents had sent everything: ~5,000 events the agents held "
        "(about the last 2.0 s of capture before the stop) were not written."
    )
    # Nothing came for a while, yet the agent had said it held more: still a loss, said.
    catch_up.stopped_by = "idle"
    assert "~5,000 events the agents held" in catch_up.unwritten()
    later = data("in", b"x", ts=103.5)
    later.seq = 99
    catch_up.saw(batch(later), written=5000)
    assert catch_up.caught_up()
    assert catch_up.unwritten() == ""
