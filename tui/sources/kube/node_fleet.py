"""The agents of a node session: one per node that runs target pods, from its Job to its stream.

For each node: create the Job (and its token Secret; the Job becomes an owner of the code
ConfigMap), notice its pod in the one watch of the session's agent pods, connect to the agent
as soon as it runs, and send it the node's pods to tap. An agent that does not answer within
the timeout, or whose pod Kubernetes refuses, fails its node with one sentence; one that dies is
replaced (up to MAX_AGENT_ATTEMPTS agents per node). Everything waits on the event loop: no
thread is held while an agent starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tui.model.updates import SourceStatus, Update
from tui.sources.kube.agent_spec import (
    AGENT_CONTAINER,
    AGENT_PORT,
    NODE_LABEL,
    AgentSettings,
    label_value,
)
from tui.sources.kube.agent_status import agent_container_state
from tui.sources.kube.agents import AgentFailed, RunningAgent, agent_failure, last_log_line
from tui.sources.kube.cluster import ApiException, Cluster, Unreachable
from tui.sources.kube.node_agent import NodeAgent, node_source
from tui.sources.kube.node_jobs import create_node_agent, own_code_configmap, why_no_agent_pod
from tui.sources.kube.pod_watch import PodChange
from tui.sources.kube.pods import Pod, pod_name
from tui.sources.kube.portforward import AgentConnector
from tui.sources.stream import UpdateFanIn

T = TypeVar("T")

MAX_AGENT_ATTEMPTS = 3
"""A node whose agent died gets a new one, this many agents in all."""
OWNERS_DELAY = 0.5
"""Seconds the Jobs of a start-up have to be created before the ConfigMap names its owners."""

Api = Callable[..., Coroutine[Any, Any, Any]]
"""Runs a blocking API call in the session's pool: ``await api(function, *args)``."""


@dataclass
class NodeState:
    node: str
    attempt: int = 0
    job: str | None = None
    agent: NodeAgent | None = None
    live: bool = False
    pod_seen: bool = False
    failed: str | None = None
    pods: dict[str, str] = field(default_factory=dict)
    """Target pods on this node -> container id."""
    deadline: asyncio.TimerHandle | None = None
    unclaimed: Pod | None = None
    """The last agent pod seen on this node before its Job's name was known: on a busy API
    server the pod can be running before the Job's creation is answered, and may not change
    again."""


class NodeFleet:
    def __init__(
        self,
        *,
        cluster: Cluster,
        settings: AgentSettings,
        namespace: str,
        timeout: float,
        api: Api,
        fan_in: UpdateFanIn,
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
        untappable: Callable[[str, str], None],
        note: Callable[[str], None],
        changed: Callable[[], None],
    ) -> None:
        self._cluster = cluster
        self._settings = settings
        self._namespace = namespace
        self._timeout = timeout
        self._api = api
        self._fan_in = fan_in
        self._spawn = spawn
        self._untappable = untappable
        self._note = note
        self._changed = changed
        self.nodes: dict[str, NodeState] = {}
        self._node_by_label: dict[str, str] = {}
        self._jobs: list[tuple[str, str]] = []  # every agent Job made: name, uid
        self._owning = False
        self.live_pods: set[str] = set()
        self.first_answer = asyncio.Event()
        """Set once an agent answered, or every node failed."""
        self.first_failure: str | None = None
        self.closing = False
        self.connectors: dict[str, AgentConnector] = {}
        """Per node source (``node/NAME``), how its agent is reached."""

    @property
    def any_live(self) -> bool:
        return any(state.live for state in self.nodes.values())

    async def tap(self, pod: str, node: str, container_id: str) -> None:
        state = self.nodes.get(node)
        if state is None:
            state = self.nodes[node] = NodeState(node)
            self._node_by_label[label_value(node)] = node
            self._start_agent(state)
        state.pods[pod] = container_id
        if state.failed is not None:
            self._untappable(pod, state.failed)
        elif state.agent is not None:
            await state.agent.tap(pod, container_id)

    async def untap(self, pod: str, node: str) -> None:
        self.live_pods.discard(pod)
        state = self.nodes.get(node)
        if state is not None:
            state.pods.pop(pod, None)
            if state.agent is not None:
                await state.agent.untap(pod)

    def close(self) -> None:
        self.closing = True
        for state in self.nodes.values():
            if state.deadline is not None:
                state.deadline.cancel()

    # -- starting ----------------------------------------------------------------------------

    def _start_agent(self, state: NodeState) -> None:
        loop = asyncio.get_running_loop()
        state.live = False
        state.pod_seen = False
        state.failed = None
        starting = f"Starting the agent on node {state.node}."
        self._fan_in.put([SourceStatus(node_source(state.node), "starting", starting)])
        state.deadline = loop.call_later(
            self._timeout, lambda: self._spawn(self._timed_out(state), "timeout")
        )
        self._spawn(self._create_agent(state, state.attempt), f"agent {state.node}")

    async def _create_agent(self, state: NodeState, attempt: int) -> None:
        cluster, settings = self._cluster, self._settings
        try:
            job, uid = await self._api(
                create_node_agent, cluster, settings, state.node, self._namespace, attempt
            )
            state.job = job
            early, state.unclaimed = state.unclaimed, None
            if early is not None:
                self._agent_pod_seen(state, early)
            if settings.code_configmap is not None:
                self._jobs.append((job, uid))
                if not self._owning:
                    self._owning = True
                    self._spawn(self._own_configmap(), "configmap owners")
            await self._check_job(state, job)
        except AgentFailed as failure:
            self._node_failed(state, f"The agent on node {state.node} cannot start: {failure}")
        except (ApiException, *Unreachable) as error:
            self._node_failed(state, f"The agent on node {state.node} cannot start: {error}.")

    async def _own_configmap(self) -> None:
        """Make every Job so far an owner of the code ConfigMap: one patch for the Jobs of a
        start-up (the ConfigMap is large: a patch per Job cost seconds at 20 nodes), then one
        per Job made later."""
        await asyncio.sleep(OWNERS_DELAY)
        while True:
            owners = list(self._jobs)
            await self._api(
                own_code_configmap, self._cluster, self._settings, self._namespace, owners
            )
            if len(self._jobs) == len(owners):
                self._owning = False
                return

    async def _check_job(self, state: NodeState, job: str) -> None:
        """Admission may refuse the Job's pod: no pod then ever shows in the watch, and only
        the Job's status or events say why. Asked now and then until a pod shows up."""
        delay = 0.5
        while state.job == job and not state.pod_seen and state.failed is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            if state.pod_seen or state.job != job:
                return
            why = await self._api(why_no_agent_pod, self._cluster, self._namespace, job)
            if why is not None and state.job == job and not state.pod_seen:
                self._node_failed(state, why)
                return

    async def _timed_out(self, state: NodeState) -> None:
        if state.live or state.failed is not None or self.closing:
            return
        why = None
        if state.job is not None:
            why = await self._api(why_no_agent_pod, self._cluster, self._namespace, state.job)
        self._node_failed(
            state,
            why
            or (
                f"No agent answered on node {state.node} within {self._timeout:g} s; raise "
                f"--agent-timeout or look at: kubectl -n {self._namespace} describe job "
                f"{state.job}."
            ),
        )

    def _node_failed(self, state: NodeState, sentence: str) -> None:
        if state.failed is not None:
            return
        state.failed = sentence.rstrip(".") + "."
        if state.deadline is not None:
            state.deadline.cancel()
        self.first_failure = self.first_failure or state.failed
        self._fan_in.put([SourceStatus(node_source(state.node), "failed", state.failed)])
        for pod in state.pods:
            self._untappable(pod, state.failed)
        if all(s.failed is not None for s in self.nodes.values()):
            self.first_answer.set()
        self._changed()

    # -- running -----------------------------------------------------------------------------

    async def agent_pod_changed(self, change: PodChange) -> None:
        """What the watch of the session's agent pods saw."""
        for pod in change.pods:
            labels = pod["metadata"].get("labels") or {}
            node = self._node_by_label.get(str(labels.get(NODE_LABEL)))
            state = self.nodes.get(node) if node is not None else None
            if state is None or change.kind == "DELETED":
                continue
            if state.job is None or not pod_name(pod).startswith(state.job + "-"):
                # A pod of an earlier agent of this node, or of the Job being created.
                state.unclaimed = pod
                continue
            self._agent_pod_seen(state, pod)

    def _agent_pod_seen(self, state: NodeState, pod: Pod) -> None:
        if state.job is None or not pod_name(pod).startswith(state.job + "-"):
            return
        state.pod_seen = True
        verdict = agent_container_state(pod, AGENT_CONTAINER)
        if verdict.phase == "running" and state.agent is None and state.failed is None:
            self._connect(state, pod)
        elif verdict.phase == "failed" and state.agent is None and state.failed is None:
            sentence = f"The agent on node {state.node} failed: {verdict.detail}"
            if verdict.wants_log:
                self._spawn(self._failed_saying(state, pod, sentence), "last words")
            else:
                self._node_failed(state, sentence)

    async def _failed_saying(self, state: NodeState, pod: Pod, sentence: str) -> None:
        """An agent that ran and stopped says best why in its last log line."""
        said = await self._api(
            last_log_line, self._cluster, self._namespace, pod_name(pod), AGENT_CONTAINER
        )
        self._node_failed(state, sentence.rstrip(".") + (f"; it said: {said}" if said else ""))

    def _connect(self, state: NodeState, pod: Pod) -> None:
        cluster, settings = self._cluster, self._settings
        source = node_source(state.node)
        agent = RunningAgent(source, self._namespace, pod_name(pod), AGENT_PORT, state.job)
        connector = AgentConnector(
            cluster,
            agent,
            settings.token,
            self._timeout,
            lambda: agent_failure(cluster, settings, agent, pod),
        )
        self.connectors[source] = connector
        node_agent = NodeAgent(state.node, connector, settings.token)
        node_agent.wanted.update(state.pods)
        state.agent = node_agent
        self._fan_in.add(f"{source}#{state.attempt}", self._watched(state, node_agent))

    async def _watched(self, state: NodeState, agent: NodeAgent) -> AsyncIterator[list[Update]]:
        """The agent's updates, noting on the way which agents and pods are live."""
        async for batch in agent.updates():
            for update in batch:
                if isinstance(update, SourceStatus):
                    self._status_seen(state, agent, update)
            yield batch
            self._changed()

    def _status_seen(self, state: NodeState, agent: NodeAgent, status: SourceStatus) -> None:
        if status.source == node_source(state.node):
            if status.state == "live" and not state.live:
                state.live = True
                if state.deadline is not None:
                    state.deadline.cancel()
                self.first_answer.set()
            elif status.state in ("failed", "gone") and state.agent is agent:
                self._agent_ended(state)
        elif status.state == "live":
            self.live_pods.add(status.source)
        else:
            self.live_pods.discard(status.source)

    def _agent_ended(self, state: NodeState) -> None:
        state.agent = None
        state.live = False
        self.live_pods.difference_update(state.pods)
        if self.closing or not state.pods:
            return
        if state.attempt + 1 >= MAX_AGENT_ATTEMPTS:
            state.failed = f"The agent on node {state.node} stopped {MAX_AGENT_ATTEMPTS} times."
            return
        state.attempt += 1
        self._note(f"Starting a new agent on node {state.node} for its {len(state.pods)} pods.")
        self._start_agent(state)
