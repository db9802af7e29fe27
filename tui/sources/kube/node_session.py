"""A session on a Kubernetes target with one agent per node: every ready pod of the target is
tapped by the agent of its node, and pods join and leave while the session runs.

Start-up holds no thread per pod or node: API calls go through a small pool (bounded
concurrency), one watch follows the session's agent pods and connects to each agent as soon
as it runs, and port-forwards never wait behind anything else. Entering returns once the first
agent answers (or every node failed); the others join as they come, and a progress note
(``agents 7/20 · pods 35/100``) says how far it got. Every pod that cannot be tapped is named
once, with the reason. Leaving deletes every Job, pod and Secret the session made.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

from agent.errors import UserError
from tui.model.updates import SessionNote, SourceStatus, Update
from tui.sources.kube.agent_bundle import bundle_name
from tui.sources.kube.agent_spec import (
    AGENT_CONTAINER,
    AGENT_PORT,
    NODE_LABEL,
    AgentSettings,
    dry_run_node_pod,
    label_value,
    session_selector,
)
from tui.sources.kube.agent_status import agent_container_state
from tui.sources.kube.agents import AgentFailed, RunningAgent, agent_failure
from tui.sources.kube.cluster import (
    ApiException,
    Cluster,
    Unreachable,
    connect,
    status_message,
    unreachable_sentence,
)
from tui.sources.kube.node_agent import NodeAgent, node_source
from tui.sources.kube.node_jobs import (
    create_code_configmap,
    create_node_agent,
    delete_node_agents,
    own_code_configmap,
    why_no_agent_pod,
)
from tui.sources.kube.options import KubeOptions
from tui.sources.kube.pod_watch import PodChange, PodWatch
from tui.sources.kube.pods import (
    Pod,
    choose_container,
    container_id,
    container_ports,
    is_ready,
    node_name,
    pod_name,
    source_name,
)
from tui.sources.kube.portforward import AgentConnector
from tui.sources.kube.preflight import check_permissions, check_pod_security, needed_permissions
from tui.sources.kube.resolve import PodQuery, build_query, list_pods
from tui.sources.kube.signals import TerminationSignals
from tui.sources.stream import UpdateFanIn
from tui.targets import KubeTarget

T = TypeVar("T")

CLEANUP_TIMEOUT = 20.0
PROGRESS_INTERVAL = 1.0
MAX_AGENT_ATTEMPTS = 3
"""A node whose agent died gets a new one, this many agents in all."""


@dataclass(frozen=True, slots=True)
class AgentPodQuery(PodQuery):
    """The session's own agent pods (which a target's query never matches)."""

    def matches(self, pod: Pod) -> bool:
        return True


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


class NodeSession:
    def __init__(self, target: KubeTarget, options: KubeOptions) -> None:
        self.description = str(target)
        self._target = target
        self._options = options
        self._session = secrets.token_hex(4)
        self._token = secrets.token_urlsafe(24)
        self._container = target.container
        self._cluster: Cluster | None = None
        self._settings: AgentSettings | None = None
        self._namespace = ""
        self._agent_namespace = ""
        self._nodes: dict[str, NodeState] = {}
        self._node_by_label: dict[str, str] = {}
        self._wanted: dict[str, str] = {}  # target pod source -> node
        self._live_pods: set[str] = set()
        self._reported: set[str] = set()  # pods named once as untappable
        self._fan_in = UpdateFanIn()
        self._pool = ThreadPoolExecutor(options.api_concurrency, thread_name_prefix="podtap api")
        self._watches: list[PodWatch] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._first_answer = asyncio.Event()
        self._jobs: list[tuple[str, str]] = []  # every agent Job made: name, uid
        self._owners_lock = asyncio.Lock()
        self._made_something = False
        self._first_failure: str | None = None
        self._progress_shown = ""
        self._progress_at = 0.0
        self._signals = TerminationSignals()
        self._closed = False
        self.connectors: dict[str, AgentConnector] = {}
        """Per node source (``node/NAME``), how its agent is reached."""

    @property
    def session_id(self) -> str:
        return self._session

    async def _api(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    # -- entering ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        options = self._options
        cluster = await asyncio.to_thread(connect, options.kubeconfig, options.context)
        self._cluster = cluster
        try:
            return await self._enter(cluster)
        except Unreachable as error:
            await self._cleanup()
            raise UserError(unreachable_sentence(cluster, error)) from None
        except BaseException:
            await self._cleanup()
            raise

    async def _enter(self, cluster: Cluster) -> Self:
        options = self._options
        namespace = self._namespace = options.namespace or cluster.namespace
        try:
            query = await self._api(build_query, cluster, self._target, namespace)
            pods, version = await self._api(list_pods, cluster, query)
        except ApiException as error:
            raise UserError(
                f"The Kubernetes API refused to answer: {status_message(error)}."
            ) from None
        if not pods:
            raise UserError(
                f"{self._target} has no pods in namespace {namespace!r}; scale it up or check "
                "the name and namespace."
            )
        sample = next((pod for pod in pods if is_ready(pod)), pods[0])
        choice = choose_container(sample, self._container)
        self._container = choice.name
        if choice.guessed:
            self._note(
                f"Tapping container {choice.name!r} of {pod_name(sample)} (the first that is "
                "not a known sidecar); name another with /container/NAME."
            )
        ports = list(options.ports) or container_ports(sample, choice.name)
        if not ports:
            raise UserError(
                f"Container {choice.name!r} of pod {pod_name(sample)} declares no "
                "containerPorts; say which port to watch with -p PORT."
            )
        self._agent_namespace = options.agent_namespace or namespace
        self._settings = AgentSettings(
            session=self._session,
            token=self._token,
            image=options.image,
            namespace=self._agent_namespace,
            ports=tuple(ports),
            privileged=options.privileged,
            first_client_timeout=int(options.agent_timeout) + 30,
            idle_timeout=options.agent_idle_timeout,
            code_configmap=bundle_name(self._session) if options.code_in_configmap else None,
        )
        await self._api(self._preflight, cluster, namespace, sample)
        self._signals.install()
        self._made_something = True
        if self._settings.code_configmap is not None:
            await self._api(create_code_configmap, cluster, self._settings,
                            self._agent_namespace)  # fmt: skip
        atexit.register(self._cleanup_at_exit)
        agent_query = AgentPodQuery(self._agent_namespace, session_selector(self._session))
        agent_watch = PodWatch(cluster, agent_query, "")
        self._watches.append(agent_watch)
        agent_watch.start()
        self._spawn(self._follow(agent_watch, self._agent_pod_changed), "agent pods")

        ready = [pod for pod in pods if is_ready(pod)]
        chosen = ready[: options.max_pods] if options.max_pods else ready
        if len(chosen) < len(ready):
            self._note(
                f"Tapping {len(chosen)} of {len(ready)} ready pods (--max-pods {options.max_pods})."
            )
        if not ready:
            self._note(
                f"No pod of {self._target} is ready yet; podtap taps them as they become ready."
            )
        for pod in chosen:
            await self._want(pod)
        target_watch = PodWatch(cluster, query, version)
        self._watches.append(target_watch)
        target_watch.start()
        self._spawn(self._follow(target_watch, self._target_pod_changed), "target pods")
        if chosen:
            await self._first_answer.wait()
            if not any(state.live for state in self._nodes.values()):
                raise UserError(self._first_failure or "No agent could start.")
        return self

    def _preflight(self, cluster: Cluster, namespace: str, sample: Pod) -> None:
        settings = self._settings
        assert settings is not None
        check_permissions(
            cluster,
            needed_permissions(
                namespace,
                {self._agent_namespace},
                ephemeral=False,
                code=settings.code_configmap is not None,
            ),
        )
        node = node_name(sample)
        if node is not None:
            check_pod_security(
                cluster,
                self._agent_namespace,
                dry_run_node_pod(settings, node, self._agent_namespace),
            )

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- target pods -------------------------------------------------------------------------

    async def _want(self, pod: Pod) -> None:
        source = source_name(pod)
        node = node_name(pod)
        runtime_id = container_id(pod, self._container or "")
        if node is None or runtime_id is None:
            why = (
                "is not on a node yet"
                if node is None
                else (f"reports no id for container {self._container!r} yet")
            )
            self._untappable(source, f"Pod {source} {why}; podtap taps it once it does.")
            return
        self._wanted[source] = node
        self._reported.discard(source)
        state = self._nodes.get(node)
        if state is None:
            state = self._nodes[node] = NodeState(node)
            self._node_by_label[label_value(node)] = node
            self._start_agent(state)
        state.pods[source] = runtime_id
        if state.failed is not None:
            self._untappable(source, state.failed)
        elif state.agent is not None:
            await state.agent.tap(source, runtime_id)
        self._progress()

    async def _unwant(self, source: str, sentence: str) -> None:
        node = self._wanted.pop(source, None)
        self._reported.discard(source)
        self._live_pods.discard(source)
        if node is None:
            return
        state = self._nodes.get(node)
        if state is not None:
            state.pods.pop(source, None)
            if state.agent is not None:
                await state.agent.untap(source)
        self._fan_in.put([SourceStatus(source, "gone", sentence)])
        self._progress()

    async def _target_pod_changed(self, change: PodChange) -> None:
        if change.kind == "SYNC":
            present = {source_name(pod) for pod in change.pods}
            for source in list(self._wanted):
                if source not in present:
                    await self._unwant(source, f"Pod {source} is gone.")
            for pod in change.pods:
                await self._consider(pod)
            return
        pod = change.pods[0]
        if change.kind == "DELETED":
            await self._unwant(source_name(pod), f"Pod {source_name(pod)} was deleted.")
            return
        await self._consider(pod)

    async def _consider(self, pod: Pod) -> None:
        source = source_name(pod)
        if source in self._wanted:
            leaving = bool(pod["metadata"].get("deletionTimestamp")) or (
                (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")
            )
            if leaving:
                await self._unwant(source, f"Pod {source} is going away.")
            return
        if not is_ready(pod):
            return
        limit = self._options.max_pods
        if limit and len(self._wanted) >= limit:
            return
        self._note(f"Pod {source} is ready: tapping it too.")
        await self._want(pod)

    # -- agents ------------------------------------------------------------------------------

    def _start_agent(self, state: NodeState) -> None:
        loop = asyncio.get_running_loop()
        state.live = False
        state.pod_seen = False
        state.failed = None
        state.deadline = loop.call_later(
            self._options.agent_timeout, lambda: self._spawn(self._timed_out(state), "timeout")
        )
        self._spawn(self._create_agent(state, state.attempt), f"agent {state.node}")

    async def _create_agent(self, state: NodeState, attempt: int) -> None:
        cluster, settings = self._cluster, self._settings
        assert cluster is not None
        assert settings is not None
        try:
            job, uid = await self._api(
                create_node_agent, cluster, settings, state.node, self._agent_namespace, attempt
            )
            state.job = job
            if settings.code_configmap is not None:
                async with self._owners_lock:
                    self._jobs.append((job, uid))
                    await self._api(own_code_configmap, cluster, settings,
                                    self._agent_namespace, list(self._jobs))  # fmt: skip
            await self._check_job(state, job)
        except AgentFailed as failure:
            self._node_failed(state, f"The agent on node {state.node} cannot start: {failure}")
        except (ApiException, *Unreachable) as error:
            self._node_failed(state, f"The agent on node {state.node} cannot start: {error}.")

    async def _check_job(self, state: NodeState, job: str) -> None:
        """Admission may refuse the Job's pod: no pod then ever shows in the watch, and only
        the Job's status or events say why. Asked now and then until a pod shows up."""
        cluster = self._cluster
        assert cluster is not None
        delay = 0.5
        while state.job == job and not state.pod_seen and state.failed is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            if state.pod_seen or state.job != job:
                return
            why = await self._api(why_no_agent_pod, cluster, self._agent_namespace, job)
            if why is not None and state.job == job and not state.pod_seen:
                self._node_failed(state, why)
                return

    async def _timed_out(self, state: NodeState) -> None:
        if state.live or state.failed is not None or self._closed:
            return
        why = None
        if state.job is not None and self._cluster is not None:
            why = await self._api(why_no_agent_pod, self._cluster, self._agent_namespace, state.job)
        timeout = self._options.agent_timeout
        self._node_failed(
            state,
            why
            or (
                f"No agent answered on node {state.node} within {timeout:g} s; raise "
                f"--agent-timeout or look at: kubectl -n {self._agent_namespace} describe job "
                f"{state.job}."
            ),
        )

    def _node_failed(self, state: NodeState, sentence: str) -> None:
        if state.failed is not None:
            return
        state.failed = sentence.rstrip(".") + "."
        if state.deadline is not None:
            state.deadline.cancel()
        self._first_failure = self._first_failure or state.failed
        self._fan_in.put([SourceStatus(node_source(state.node), "failed", state.failed)])
        for source in state.pods:
            self._untappable(source, state.failed)
        if all(s.failed is not None for s in self._nodes.values()):
            self._first_answer.set()
        self._progress()

    async def _agent_pod_changed(self, change: PodChange) -> None:
        for pod in change.pods:
            labels = pod["metadata"].get("labels") or {}
            node = self._node_by_label.get(str(labels.get(NODE_LABEL)))
            state = self._nodes.get(node) if node is not None else None
            if state is None or change.kind == "DELETED" or state.job is None:
                continue
            if not pod_name(pod).startswith(state.job + "-"):
                continue  # a pod of an earlier agent of this node
            state.pod_seen = True
            verdict = agent_container_state(pod, AGENT_CONTAINER)
            if verdict.phase == "running" and state.agent is None and state.failed is None:
                self._connect(state, pod)
            elif verdict.phase == "failed" and state.agent is None:
                self._node_failed(state, f"The agent on node {state.node} failed: {verdict.detail}")

    def _connect(self, state: NodeState, pod: Pod) -> None:
        cluster, settings = self._cluster, self._settings
        assert cluster is not None
        assert settings is not None
        source = node_source(state.node)
        agent = RunningAgent(source, self._agent_namespace, pod_name(pod), AGENT_PORT, state.job)
        connector = AgentConnector(
            cluster,
            agent,
            self._token,
            self._options.agent_timeout,
            lambda: agent_failure(cluster, settings, agent, pod),
        )
        self.connectors[source] = connector
        node_agent = NodeAgent(state.node, connector, self._token)
        for source_pod, runtime_id in state.pods.items():
            node_agent.wanted[source_pod] = runtime_id
        state.agent = node_agent
        self._fan_in.add(f"{source}#{state.attempt}", self._watched(state, node_agent))

    async def _watched(self, state: NodeState, agent: NodeAgent) -> AsyncIterator[list[Update]]:
        """The agent's updates, noting on the way what the progress line counts."""
        async for batch in agent.updates():
            for update in batch:
                if isinstance(update, SourceStatus):
                    self._status_seen(state, agent, update)
            yield batch
            self._progress()

    def _status_seen(self, state: NodeState, agent: NodeAgent, status: SourceStatus) -> None:
        if status.source == node_source(state.node):
            if status.state == "live" and not state.live:
                state.live = True
                if state.deadline is not None:
                    state.deadline.cancel()
                self._first_answer.set()
            elif status.state in ("failed", "gone") and state.agent is agent:
                self._agent_ended(state)
        elif status.state == "live":
            self._live_pods.add(status.source)
        else:
            self._live_pods.discard(status.source)

    def _agent_ended(self, state: NodeState) -> None:
        state.agent = None
        state.live = False
        self._live_pods.difference_update(state.pods)
        if self._closed or not state.pods:
            return
        if state.attempt + 1 >= MAX_AGENT_ATTEMPTS:
            state.failed = f"The agent on node {state.node} stopped {MAX_AGENT_ATTEMPTS} times."
            return
        state.attempt += 1
        self._note(f"Starting a new agent on node {state.node} for its {len(state.pods)} pods.")
        self._start_agent(state)

    # -- notes and progress ------------------------------------------------------------------

    def _note(self, text: str) -> None:
        self._fan_in.put([SessionNote(text)])

    def _untappable(self, source: str, sentence: str) -> None:
        if source in self._reported:
            return
        self._reported.add(source)
        self._fan_in.put([SourceStatus(source, "failed", sentence)])

    def _progress(self) -> None:
        nodes = [s for s in self._nodes.values() if s.pods]
        live = sum(1 for s in nodes if s.live)
        tapped = len(self._live_pods & set(self._wanted))
        text = f"agents {live}/{len(nodes)} · pods {tapped}/{len(self._wanted)}"
        now = time.monotonic()
        done = tapped + len(self._reported & set(self._wanted)) >= len(self._wanted)
        if text == self._progress_shown or (not done and now - self._progress_at < 1.0):
            return
        self._progress_shown, self._progress_at = text, now
        self._note(text)

    # -- the stream --------------------------------------------------------------------------

    async def updates(self) -> AsyncIterator[Sequence[Update]]:
        async for batch in self._fan_in:
            yield batch

    @property
    def live_sources(self) -> list[str]:
        return sorted(self._live_pods)

    # -- leaving -----------------------------------------------------------------------------

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._cleanup()

    async def _cleanup(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._signals.remove()
        for watch in self._watches:
            watch.stop()
        for state in self._nodes.values():
            if state.deadline is not None:
                state.deadline.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # Jobs being created finish first: one created after the deletion would stay behind.
        await asyncio.wait(tasks, timeout=CLEANUP_TIMEOUT) if tasks else None
        await self._fan_in.aclose()
        for connector in self.connectors.values():
            connector.cut()
        deleting = asyncio.get_running_loop().run_in_executor(None, self._delete_agents)
        try:
            await asyncio.wait_for(asyncio.shield(deleting), CLEANUP_TIMEOUT)
        except (asyncio.CancelledError, TimeoutError):
            await asyncio.wait([deleting], timeout=CLEANUP_TIMEOUT)
        atexit.unregister(self._cleanup_at_exit)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._cluster is not None:
            self._cluster.close()

    def _delete_agents(self) -> None:
        cluster = self._cluster
        if cluster is None or not self._made_something:
            return
        with contextlib.suppress(ApiException, OSError):
            delete_node_agents(cluster, self._agent_namespace, self._session)

    def _cleanup_at_exit(self) -> None:
        """Last resort when the process ends without leaving the session."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._delete_agents()

    async def _follow(self, watch: PodWatch, apply: Callable[[PodChange], Awaitable[None]]) -> None:
        while True:
            change = await watch.changes.get()
            try:
                await apply(change)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._note(f"Following the pods failed once: {error}.")
