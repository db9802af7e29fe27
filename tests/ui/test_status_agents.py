"""The status bar counts node agents and the pods they tap apart; a local session stays terse."""

from __future__ import annotations

import pytest

from agent.events import Hello, PodTapFailed, PodTapped
from tests.ui.driving import SIZE, fed, screen_text, shop_app
from tests.ui.fakes import FakeSession, shop_updates
from tui.model.updates import AgentEvent, SourceStatus, Update
from tui.sources.kube.node_agent import PodAttribution, node_source

pytestmark = pytest.mark.timeout(30)


def node_updates(node: str, tapped: list[str], failed: list[str]) -> list[Update]:
    """What a node session yields for one node: the agent live, its pods tapped or refused."""
    source = node_source(node)
    hello = Hello(
        ts=1.0,
        protocol=2,
        version="0",
        agent_id=f"agent-{node}",
        target=source,
        ports=[8080],
        interfaces=[],
        oldest_seq=1,
        next_seq=1,
    )
    raw: list[Update] = [SourceStatus(source, "live", "Connected."), AgentEvent(source, hello)]
    raw += [AgentEvent(source, PodTapped(ts=2.0, pod=pod, interfaces=["eth0"])) for pod in tapped]
    raw += [
        AgentEvent(source, PodTapFailed(ts=2.0, pod=pod, reason="its namespace is gone"))
        for pod in failed
    ]
    return PodAttribution(node).attribute(raw, [*tapped, *failed])


async def test_node_agents_and_their_pods_are_counted_apart() -> None:
    batch = [
        *node_updates("n1", ["default/web-1", "default/web-2"], []),
        *node_updates("n2", ["default/web-3"], ["default/web-4"]),
        # Not tapped yet: its node's agent is still starting.
        SourceStatus(node_source("n3"), "starting", "Starting the agent on node n3."),
        SourceStatus("default/web-5", "starting", "Waiting for the agent on node n3.", "pod"),
    ]
    app = shop_app(FakeSession([batch], description="deployment/web", finite=True))
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.pause()
        text = screen_text(app)
        assert "agents 2/3 · pods 3/5" in text
        assert "default/web-4: The agent on node n2 cannot tap it" in text


async def test_a_local_session_shows_its_one_agent_and_no_pods() -> None:
    app = shop_app(FakeSession([shop_updates()], finite=True))
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.pause()
        text = screen_text(app)
        status = next(line for line in text.splitlines() if "agents " in line)
        assert "agents 1/1  " in status
        assert "pods" not in status
