"""The port-forward to an agent breaks mid-stream: podtap opens a new one and resumes, with
nothing lost and nothing repeated."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable

import pytest

from agent.events import ConnectionOpened, DataReceived
from tests.kubesim import KubeSim
from tui.model.updates import AgentEvent, SourceStatus
from tui.sources.kube.node_session import NodeSession
from tui.sources.kube.options import KubeOptions
from tui.targets import KubeTarget

pytestmark = [pytest.mark.root]

REQUESTS = 300
CUT_EVERY = 60


def session_options(kubeconfig: str) -> KubeOptions:
    return KubeOptions(kubeconfig=kubeconfig)


def send_requests(ip: str, cut: Callable[[], int]) -> int:
    """Sends the numbered requests, cutting the port-forward now and then; returns the cuts."""
    cuts = 0
    for n in range(REQUESTS):
        with urllib.request.urlopen(f"http://{ip}:8080/seq/{n}", timeout=5) as response:
            response.read()
        if n % CUT_EVERY == CUT_EVERY // 2:
            cuts += cut()
        time.sleep(0.002)
    return cuts


@pytest.mark.kubesim("--deployment", "default/web=1:8080")
@pytest.mark.timeout(180)
async def test_a_cut_port_forward_resumes_with_nothing_lost_or_repeated(kubesim: KubeSim) -> None:
    (pod,) = kubesim.pods("default", "app=web")
    source = f"default/{pod.name}"
    session = NodeSession(KubeTarget("deployment", "web"), session_options(str(kubesim.kubeconfig)))
    requests: dict[int, bytearray] = defaultdict(bytearray)
    opened: list[int] = []
    states: list[str] = []
    async with session:
        connector = session.connectors[f"node/{pod.node}"]
        loop = asyncio.get_running_loop()
        updates = aiter(session.updates())
        while "live" not in states:  # the agent captures from its greeting on
            for update in await anext(updates):
                if isinstance(update, SourceStatus) and update.source == source:
                    states.append(update.state)
        sending = loop.run_in_executor(None, send_requests, pod.ip, connector.cut)
        deadline = loop.time() + 60
        async for batch in updates:
            for update in batch:
                if isinstance(update, SourceStatus) and update.source.startswith("node/"):
                    states.append(update.state)
                elif isinstance(update, AgentEvent) and not update.source.startswith("node/"):
                    assert update.source == source
                    event = update.event
                    if isinstance(event, ConnectionOpened):
                        opened.append(event.conn)
                    elif isinstance(event, DataReceived) and event.direction == "in":
                        requests[event.conn] += event.data
            complete = sum(b"\r\n\r\n" in data for data in requests.values())
            if (sending.done() and complete >= REQUESTS) or loop.time() > deadline:
                break
        cuts = await sending
        connections = connector.connections
    assert len(opened) == len(set(opened)), "a connection was reported twice"
    assert len(opened) == REQUESTS, f"{REQUESTS - len(opened)} connections never reported"
    paths = sorted(
        int(match.group(1))
        for data in requests.values()
        for match in re.finditer(rb"GET /seq/(\d+) HTTP/1.1", bytes(data))
    )
    assert paths == list(range(REQUESTS))
    # Every cut but perhaps the last (the test may end first) was followed by a new
    # port-forward and a resumed stream.
    assert cuts >= 3
    assert connections >= cuts
    # A stream that heals at once is announced as live again (resumed), not as reconnecting.
    assert states.count("live") >= cuts
    assert "failed" not in states
