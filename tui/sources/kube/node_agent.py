"""One node agent as the client sees it: the pods it should tap, and its events per pod.

A node agent streams the events of every pod it taps on one websocket, with agent-wide
connection ids. :class:`PodAttribution` (sans-IO) turns that stream into the updates of each
pod, named ``NAMESPACE/POD`` like the agents of one pod are, so that everything downstream
(store, outputs, the app) needs nothing node-specific. :class:`NodeAgent` keeps the set of
pods the agent should tap and sends it again on every new connection: an agent that restarted
starts with no pods, and requests are idempotent (agent/requests.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import WebSocketException
from websockets.protocol import State

from agent.events import (
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    Gap,
    Hello,
    PodTapFailed,
    PodTapped,
    PodUntapped,
)
from agent.requests import AnyRequest, TapPod, UntapPod, encode_request
from tui.model.updates import AgentEvent, SourceStatus, Update
from tui.sources.stream import AgentStream, Connector

ASKED = "the client asked"
"""The reason a node agent gives for an untap podtap asked for (agent/node.py)."""


def node_source(node: str) -> str:
    """How updates about the node agent itself are named: ``node/NAME``."""
    return f"node/{node}"


class PodAttribution:
    """Sans-IO: the updates of one node agent's stream, as updates of the pods they concern.
    Events of connections it cannot place (their opening was lost) stay with the node."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.source = node_source(node)
        self.tapped: set[str] = set()
        self._pods: dict[int, str] = {}
        self._hello: Hello | None = None

    def attribute(self, updates: Sequence[Update], wanted: Sequence[str]) -> list[Update]:
        """``wanted``: the pods the agent should tap now (told when the agent stops)."""
        out: list[Update] = []
        for update in updates:
            if isinstance(update, SourceStatus):
                out.append(update)
                if update.state in ("failed", "gone"):
                    out += self._agent_ended(update.detail, wanted)
                continue
            if not isinstance(update, AgentEvent):
                out.append(update)
                continue
            event = update.event
            if isinstance(event, ConnectionOpened) and event.pod:
                self._pods[event.conn] = event.pod
                out.append(AgentEvent(event.pod, event))
            elif isinstance(event, DataReceived | Gap):
                out.append(AgentEvent(self._pods.get(event.conn, self.source), event))
            elif isinstance(event, ConnectionClosed):
                out.append(AgentEvent(self._pods.pop(event.conn, self.source), event))
            elif isinstance(event, Hello):
                out += self._greeted(event)
            elif isinstance(event, PodTapped):
                out += self._tapped(event)
            elif isinstance(event, PodUntapped):
                self.tapped.discard(event.pod)
                if event.reason != ASKED:
                    sentence = f"The agent on node {self.node} stopped tapping it: {event.reason}"
                    out.append(SourceStatus(event.pod, "failed", _sentence(sentence), "pod"))
            elif isinstance(event, PodTapFailed):
                self.tapped.discard(event.pod)
                sentence = f"The agent on node {self.node} cannot tap it: {event.reason}"
                out.append(SourceStatus(event.pod, "failed", _sentence(sentence), "pod"))
            else:
                out.append(update)
        return out

    def _greeted(self, hello: Hello) -> list[Update]:
        restarted = self._hello is not None and self._hello.agent_id != hello.agent_id
        self._hello = hello
        out: list[Update] = [AgentEvent(self.source, hello)]
        if restarted:
            # Its connection ids start over: each pod's store entries must hear of it too.
            self._pods.clear()
            for pod in sorted(self.tapped):
                out.append(AgentEvent(pod, msgspec.structs.replace(hello, target=pod)))
            self.tapped.clear()
        return out

    def _tapped(self, event: PodTapped) -> list[Update]:
        self.tapped.add(event.pod)
        out: list[Update] = []
        if self._hello is not None:
            hello = msgspec.structs.replace(
                self._hello, target=event.pod, interfaces=list(event.interfaces)
            )
            out.append(AgentEvent(event.pod, hello))
        interfaces = ", ".join(event.interfaces) or "no interfaces yet"
        sentence = f"Tapped by the agent on node {self.node} (capturing on {interfaces})."
        out.append(SourceStatus(event.pod, "live", sentence, "pod"))
        return out

    def _agent_ended(self, detail: str, wanted: Sequence[str]) -> list[Update]:
        self.tapped.clear()
        sentence = _sentence(f"The agent on node {self.node} is gone ({detail.rstrip('.')})")
        return [SourceStatus(pod, "failed", sentence, "pod") for pod in wanted]


def _sentence(text: str) -> str:
    return text.rstrip(".") + "."


class NodeAgent:
    """The client side of one node agent: ``tap``/``untap`` pods, read ``updates()``."""

    def __init__(self, node: str, connect: Connector, token: str) -> None:
        self.node = node
        self.attribution = PodAttribution(node)
        self.wanted: dict[str, str] = {}
        """Pod (``NAMESPACE/NAME``) -> container id, for every pod this agent should tap."""
        self._connect = connect
        self._websocket: ClientConnection | None = None
        self.stream = AgentStream(node_source(node), self._open, token)

    async def _open(self, path: str) -> ClientConnection:
        websocket = await self._connect(path)
        self._websocket = websocket
        for pod, container in list(self.wanted.items()):
            await websocket.send(encode_request(TapPod(pod=pod, container_id=container)))
        return websocket

    async def tap(self, pod: str, container_id: str) -> None:
        if self.wanted.get(pod) == container_id:
            return
        self.wanted[pod] = container_id
        await self._send(TapPod(pod=pod, container_id=container_id))

    async def untap(self, pod: str) -> None:
        if self.wanted.pop(pod, None) is not None:
            await self._send(UntapPod(pod=pod))

    async def _send(self, request: AnyRequest) -> None:
        # Not connected: the request goes out with the whole set on the next connection.
        websocket = self._websocket
        if websocket is not None and websocket.state is State.OPEN:
            with contextlib.suppress(WebSocketException, OSError):
                await websocket.send(encode_request(request))

    async def updates(self) -> AsyncIterator[list[Update]]:
        async for batch in self.stream:
            yield self.attribution.attribute(batch, list(self.wanted))
