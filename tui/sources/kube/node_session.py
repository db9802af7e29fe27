"""A session on a Kubernetes target with one agent per node: every ready pod of the target is
tapped by the agent of its node (tui/sources/kube/node_fleet.py), and pods join and leave while
the session runs.

Start-up holds no thread per pod or node: API calls go through a small pool (bounded
concurrency), one watch follows the session's agent pods, and port-forwards never wait behind
anything else. Entering returns once the first agent answers (or every node failed); the others
join as they come, and a progress note (``agents 7/20 · pods 35/100``) says how far it got.
Every pod that cannot be tapped is named once, with the reason. Leaving deletes every Job, pod,
Secret and ConfigMap the session made.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from agent.errors import UserError
from tui.model.updates import SessionNote, SourceStatus, Update
from tui.sources.kube.agent_bundle import bundle_name
from tui.sources.kube.agent_spec import AgentSettings, dry_run_node_pod, session_selector
from tui.sources.kube.api_pool import ApiPool
from tui.sources.kube.cluster import (
    Cluster,
    Unreachable,
    connect,
    unreachable_sentence,
)
from tui.sources.kube.node_fleet import NodeFleet
from tui.sources.kube.node_jobs import create_code_configmap, delete_node_agents
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
from tui.sources.kube.resolve import PodQuery, target_pods
from tui.sources.kube.signals import TerminationSignals
from tui.sources.stream import UpdateFanIn
from tui.targets import KubeTarget

CLEANUP_TIMEOUT = 20.0
TASKS_TIMEOUT = 2.0
PROGRESS_INTERVAL = 1.0
"""Seconds between two progress notes, but for the last."""


@dataclass(frozen=True, slots=True)
class AgentPodQuery(PodQuery):
    """The session's own agent pods (which a target's query never matches)."""

    def matches(self, pod: Pod) -> bool:
        return True


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
        self._agent_namespace = ""
        self._fleet: NodeFleet | None = None
        self._wanted: dict[str, str] = {}  # target pod source -> node
        self._reported: set[str] = set()  # pods named once as untappable
        self._fan_in = UpdateFanIn()
        self._api = ApiPool(options.api_concurrency)
        self._watches: list[PodWatch] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._made_something = False
        self._progress_shown = ""
        self._progress_at = 0.0
        self._signals = TerminationSignals()
        self._closed = False

    @property
    def session_id(self) -> str:
        return self._session

    @property
    def connectors(self) -> dict[str, AgentConnector]:
        """Per node source (``node/NAME``), how its agent is reached (tests cut them)."""
        return self._fleet.connectors if self._fleet is not None else {}

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        namespace = options.namespace or cluster.namespace
        query, pods, version = await self._api(target_pods, cluster, self._target, namespace)
        sample = next((pod for pod in pods if is_ready(pod)), pods[0])
        settings = self._settings = self._plan(sample, namespace)
        await self._api(self._preflight, cluster, namespace, sample)
        self._signals.install()
        self._made_something = True
        atexit.register(self._cleanup_at_exit)
        if settings.code_configmap is not None:
            await self._api(create_code_configmap, cluster, settings, self._agent_namespace)
        fleet = self._fleet = NodeFleet(
            cluster=cluster,
            settings=settings,
            namespace=self._agent_namespace,
            timeout=options.agent_timeout,
            api=self._api,
            fan_in=self._fan_in,
            spawn=self._spawn,
            untappable=self._untappable,
            note=self._note,
            changed=self._progress,
        )
        agent_query = AgentPodQuery(self._agent_namespace, session_selector(self._session))
        self._follow(PodWatch(cluster, agent_query, ""), fleet.agent_pod_changed, "agent pods")

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
        self._follow(PodWatch(cluster, query, version), self._target_pod_changed, "target pods")
        if chosen:
            await fleet.first_answer.wait()
            if not fleet.any_live:
                raise UserError(fleet.first_failure or "No agent could start.")
        return self

    def _plan(self, sample: Pod, namespace: str) -> AgentSettings:
        """The container and ports to tap, and the agents' settings; raises UserError."""
        options = self._options
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
        return AgentSettings(
            session=self._session,
            token=self._token,
            image=options.image,
            namespace=self._agent_namespace,
            ports=tuple(ports),
            privileged=options.privileged,
            # An agent waits for its first client while podtap may still be starting others.
            first_client_timeout=int(options.agent_timeout) + 30,
            idle_timeout=options.agent_idle_timeout,
            code_configmap=bundle_name(self._session) if options.code_in_configmap else None,
        )

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

    def _follow(
        self, watch: PodWatch, apply: Callable[[PodChange], Awaitable[None]], name: str
    ) -> None:
        self._watches.append(watch)
        watch.start()
        self._spawn(self._apply_changes(watch, apply), name)

    async def _apply_changes(
        self, watch: PodWatch, apply: Callable[[PodChange], Awaitable[None]]
    ) -> None:
        while True:
            change = await watch.changes.get()
            try:
                await apply(change)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._note(f"Following the pods failed once: {error}.")

    # -- target pods -------------------------------------------------------------------------

    async def _want(self, pod: Pod) -> None:
        fleet = self._fleet
        assert fleet is not None
        source = source_name(pod)
        node = node_name(pod)
        runtime_id = container_id(pod, self._container or "")
        if node is None or runtime_id is None:
            why = (
                "is not on a node yet"
                if node is None
                else f"reports no id for container {self._container!r} yet"
            )
            self._untappable(source, f"Pod {source} {why}; podtap taps it once it does.")
            return
        self._wanted[source] = node
        self._reported.discard(source)
        waiting = f"Waiting for the agent on node {node}."
        self._fan_in.put([SourceStatus(source, "starting", waiting, "pod")])
        await fleet.tap(source, node, runtime_id)
        self._progress()

    async def _unwant(self, source: str, sentence: str) -> None:
        node = self._wanted.pop(source, None)
        self._reported.discard(source)
        if node is None or self._fleet is None:
            return
        await self._fleet.untap(source, node)
        self._fan_in.put([SourceStatus(source, "gone", sentence, "pod")])
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

    # -- notes and progress ------------------------------------------------------------------

    def _note(self, text: str) -> None:
        self._fan_in.put([SessionNote(text)])

    def _untappable(self, source: str, sentence: str) -> None:
        if source in self._reported:
            return
        self._reported.add(source)
        self._fan_in.put([SourceStatus(source, "failed", sentence, "pod")])

    def _progress(self) -> None:
        fleet = self._fleet
        if fleet is None:
            return
        nodes = [s for s in fleet.nodes.values() if s.pods]
        live = sum(1 for s in nodes if s.live)
        wanted = set(self._wanted)
        tapped = len(fleet.live_pods & wanted)
        text = f"agents {live}/{len(nodes)} · pods {tapped}/{len(wanted)}"
        now = time.monotonic()
        done = tapped + len(self._reported & wanted) >= len(wanted)
        if text == self._progress_shown or (
            not done and now - self._progress_at < PROGRESS_INTERVAL
        ):
            return
        self._progress_shown, self._progress_at = text, now
        self._note(text)

    # -- the stream --------------------------------------------------------------------------

    async def updates(self) -> AsyncIterator[Sequence[Update]]:
        async for batch in self._fan_in:
            yield batch

    @property
    def live_sources(self) -> list[str]:
        return sorted(self._fleet.live_pods) if self._fleet is not None else []

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
        if self._fleet is not None:
            self._fleet.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # Cancelled, they only unwind: a call they left in a thread is swept up below.
            await asyncio.wait(tasks, timeout=TASKS_TIMEOUT)
        # Port-forwards cut first: a stream then closes at once instead of waiting on a close
        # handshake through a tunnel that is going away anyway.
        for connector in self.connectors.values():
            connector.cut()
        await self._fan_in.aclose()
        deleting = asyncio.get_running_loop().run_in_executor(None, self._delete_agents)
        try:
            await asyncio.wait_for(asyncio.shield(deleting), CLEANUP_TIMEOUT)
        except (asyncio.CancelledError, TimeoutError):
            await asyncio.wait([deleting], timeout=CLEANUP_TIMEOUT)
        atexit.unregister(self._cleanup_at_exit)
        self._api.abandon()
        if self._cluster is not None:
            self._cluster.close()

    def _delete_agents(self) -> None:
        cluster = self._cluster
        if cluster is None or not self._made_something:
            return
        mark = self._api.mark()
        delete_node_agents(cluster, self._agent_namespace, self._session)
        # A Job still being created when the session was cancelled may land after that sweep:
        # once the calls in flight are done (each bounded by its timeout), sweep again. When
        # none was, a second sweep would only cost another round trip.
        self._api.drain()
        if self._api.ran_since(mark):
            delete_node_agents(cluster, self._agent_namespace, self._session)

    def _cleanup_at_exit(self) -> None:
        """Last resort when the process ends without leaving the session."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._delete_agents()
