"""A node agent's stream turned into each pod's updates (tui/sources/kube/node_agent.py)."""

from __future__ import annotations

import pytest

from agent.events import (
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    Hello,
    PodTapFailed,
    PodTapped,
    PodUntapped,
    Stats,
)
from tui.model.updates import AgentEvent, SourceStatus, Update
from tui.sources.kube.node_agent import ASKED, PodAttribution

pytestmark = pytest.mark.timeout(10)

NODE = "node/n1"


def hello(agent_id: str = "a1") -> AgentEvent:
    return AgentEvent(
        NODE,
        Hello(
            ts=1.0,
            protocol=2,
            version="0",
            agent_id=agent_id,
            target=NODE,
            ports=[80],
            interfaces=[],
            oldest_seq=1,
            next_seq=1,
        ),
    )


def opened(conn: int, pod: str) -> AgentEvent:
    return AgentEvent(
        NODE,
        ConnectionOpened(
            ts=2.0,
            conn=conn,
            client="10.0.0.9",
            client_port=5000 + conn,
            server="10.0.0.2",
            server_port=80,
            pod=pod,
        ),
    )


def sources(updates: list[Update]) -> list[tuple[str, str]]:
    return [
        (u.source, type(u.event).__name__ if isinstance(u, AgentEvent) else u.state)
        for u in updates
        if isinstance(u, AgentEvent | SourceStatus)
    ]


def test_every_connection_event_goes_to_its_pod_and_the_rest_to_the_node() -> None:
    attribution = PodAttribution("n1")
    out = attribution.attribute(
        [
            hello(),
            AgentEvent(NODE, PodTapped(ts=1.5, pod="ns/a", interfaces=["eth0"])),
            opened(0, "ns/a"),
            opened(1, "ns/b"),
            AgentEvent(NODE, DataReceived(ts=3.0, conn=1, direction="in", data=b"GET /")),
            AgentEvent(NODE, DataReceived(ts=3.0, conn=7, direction="in", data=b"?")),
            AgentEvent(NODE, ConnectionClosed(ts=4.0, conn=0, reason="fin")),
            AgentEvent(
                NODE,
                Stats(
                    ts=5.0,
                    packets=1,
                    bytes=1,
                    kernel_packets=1,
                    kernel_drops=0,
                    open_connections=1,
                    gaps=0,
                    gap_bytes=0,
                ),
            ),
        ],
        wanted=["ns/a", "ns/b"],
    )
    assert sources(out) == [
        (NODE, "Hello"),
        ("ns/a", "Hello"),
        ("ns/a", "live"),
        ("ns/a", "ConnectionOpened"),
        ("ns/b", "ConnectionOpened"),
        ("ns/b", "DataReceived"),
        (NODE, "DataReceived"),  # its opening was never seen: it stays with the node
        ("ns/a", "ConnectionClosed"),
        (NODE, "Stats"),
    ]
    pod_hello = out[1]
    assert isinstance(pod_hello, AgentEvent)
    assert isinstance(pod_hello.event, Hello)
    assert (pod_hello.event.agent_id, pod_hello.event.target) == ("a1", "ns/a")
    assert pod_hello.event.interfaces == ["eth0"]


def test_failures_are_the_pods_own_and_an_asked_untap_says_nothing() -> None:
    attribution = PodAttribution("n1")
    out = attribution.attribute(
        [
            hello(),
            AgentEvent(
                NODE, PodTapFailed(ts=1.0, pod="ns/x", reason="Container 'ab' was not found")
            ),
            AgentEvent(NODE, PodUntapped(ts=2.0, pod="ns/y", reason=ASKED)),
            AgentEvent(NODE, PodUntapped(ts=2.0, pod="ns/z", reason="capture failed: gone")),
        ],
        wanted=[],
    )
    statuses = [u for u in out if isinstance(u, SourceStatus)]
    assert [(s.source, s.state) for s in statuses] == [("ns/x", "failed"), ("ns/z", "failed")]
    assert statuses[0].detail == "The agent on node n1 cannot tap it: Container 'ab' was not found."


def test_an_agent_that_ends_fails_every_pod_it_should_tap() -> None:
    attribution = PodAttribution("n1")
    out = attribution.attribute(
        [SourceStatus(NODE, "gone", "The agent pod was deleted.")], wanted=["ns/a", "ns/b"]
    )
    assert [(s.source, s.state) for s in out if isinstance(s, SourceStatus)] == [
        (NODE, "gone"),
        ("ns/a", "failed"),
        ("ns/b", "failed"),
    ]


def test_a_restarted_agent_is_announced_to_each_pod_it_had_tapped() -> None:
    attribution = PodAttribution("n1")
    attribution.attribute(
        [hello("a1"), AgentEvent(NODE, PodTapped(ts=1.5, pod="ns/a", interfaces=[]))],
        wanted=["ns/a"],
    )
    out = attribution.attribute([hello("a2")], wanted=["ns/a"])
    assert sources(out) == [(NODE, "Hello"), ("ns/a", "Hello")]
    assert attribution.tapped == set()
