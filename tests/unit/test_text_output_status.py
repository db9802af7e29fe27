"""What ``podtap dump`` says on stderr about the capture (its stdout is for traffic only)."""

from __future__ import annotations

import io

import pytest

from agent.events import Hello, Stats
from tui.commands.live_capture import StatusReporter
from tui.model.updates import AgentEvent, SessionNote, SourceStatus

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


def stats(drops: int) -> Stats:
    return Stats(
        ts=0.0,
        packets=100,
        bytes=1000,
        kernel_packets=100,
        kernel_drops=drops,
        open_connections=1,
        gaps=0,
        gap_bytes=0,
    )


def test_listening_once_then_reconnections_and_failures() -> None:
    stderr = io.StringIO()
    reporter = StatusReporter(stderr)
    reporter.report([SourceStatus("local", "starting", "Agent started (pid 7).")])
    reporter.report([SourceStatus("local", "live", "Connected to agent a1 (capturing on lo).")])
    reporter.report([AgentEvent("local", hello())])
    reporter.report([SourceStatus("local", "reconnecting", "Lost the stream (x); reconnecting.")])
    reporter.report(
        [
            SourceStatus("local", "live", "Reconnected to the agent; resumed after event 9."),
            AgentEvent("local", hello()),
        ]
    )
    reporter.report([SessionNote("Guessed the container.")])
    reporter.report([SourceStatus("local", "failed", "The agent was stopped by SIGKILL.")])
    assert stderr.getvalue().splitlines() == [
        "* Listening for traffic... Press Ctrl+C to stop",
        "podtap: Lost the stream (x); reconnecting.",
        "podtap: Reconnected to the agent; resumed after event 9.",
        "podtap: Guessed the container.",
        "podtap: The agent was stopped by SIGKILL.",
    ]
    assert reporter.failure == "The agent was stopped by SIGKILL."


def test_kernel_drops_are_reported_as_they_grow_per_agent() -> None:
    stderr = io.StringIO()
    reporter = StatusReporter(stderr)
    reporter.report([AgentEvent("ns/web-1", hello()), AgentEvent("ns/web-1", stats(0))])
    reporter.report([AgentEvent("ns/web-1", stats(120))])
    reporter.report([AgentEvent("ns/web-1", stats(120))])
    reporter.report([AgentEvent("ns/web-1", stats(150))])
    # The agent restarted: its counters start over, and its drops are still reported.
    reporter.report([AgentEvent("ns/web-1", hello("a2")), AgentEvent("ns/web-1", stats(5))])
    lines = stderr.getvalue().splitlines()[1:]
    assert lines == [
        "podtap: [ns/web-1] the kernel dropped 120 packets (120 in all): the capture could not "
        "keep up, and what they carried is missing.",
        "podtap: [ns/web-1] the kernel dropped 30 packets (150 in all): the capture could not "
        "keep up, and what they carried is missing.",
        "podtap: [ns/web-1] the kernel dropped 5 packets (5 in all): the capture could not "
        "keep up, and what they carried is missing.",
    ]
