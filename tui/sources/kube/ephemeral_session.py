"""A session with ``--ephemeral``: an agent inside each ready pod (an ephemeral container),
for clusters that forbid the node agents' hostPID; one stream per agent, all merged.

Entering it resolves the target, runs the pre-flight checks, starts the first agents and waits
until they run; it then follows the target's pods (new ready pods are tapped, deleted ones are
marked gone). An ephemeral container cannot be removed: each agent exits by itself once podtap
has been gone for its idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Self

from agent.errors import UserError
from tui.model.updates import SessionNote, SourceStatus, Update
from tui.sources.kube import agents
from tui.sources.kube.agent_spec import AGENT_PORT, AgentSettings
from tui.sources.kube.cluster import (
    ApiException,
    Cluster,
    Unreachable,
    connect,
    status_message,
    unreachable_sentence,
)
from tui.sources.kube.options import KubeOptions
from tui.sources.kube.pod_watch import PodChange, PodWatch
from tui.sources.kube.pods import (
    Pod,
    choose_container,
    container_ports,
    is_ready,
    pod_name,
    source_name,
)
from tui.sources.kube.portforward import AgentConnector
from tui.sources.kube.preflight import check_permissions, needed_permissions
from tui.sources.kube.resolve import target_pods
from tui.sources.kube.signals import TerminationSignals
from tui.sources.stream import AgentStream, UpdateFanIn
from tui.targets import KubeTarget

CLEANUP_TIMEOUT = 20.0
EPHEMERAL_PORTS = 15000


@dataclass
class TappedPod:
    """One target pod podtap is tapping (or starting to)."""

    pod: Pod
    starting: asyncio.Task[None] | None = None
    agent: agents.RunningAgent | None = None
    connector: AgentConnector | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"].get("uid") or "")


class EphemeralSession:
    def __init__(self, target: KubeTarget, options: KubeOptions) -> None:
        self.description = str(target)
        self._target = target
        self._options = options
        self._ports: list[int] = list(options.ports)
        self._max_pods: int | None = options.max_pods
        self._timeout = options.agent_timeout
        self._session = secrets.token_hex(4)
        self._token = secrets.token_urlsafe(24)
        self._cluster: Cluster | None = None
        self._settings: AgentSettings | None = None
        self._container = target.container
        self._tapped: dict[str, TappedPod] = {}
        self._fan_in = UpdateFanIn()
        self._watch: PodWatch | None = None
        self._follower: asyncio.Task[None] | None = None
        self._signals = TerminationSignals()
        self._closed = False
        self.connectors: dict[str, AgentConnector] = {}
        """Per source, how its agent is reached (tests cut port-forwards through it)."""

    @property
    def session_id(self) -> str:
        return self._session

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
        namespace = self._options.namespace or cluster.namespace
        query, pods, version = await asyncio.to_thread(
            target_pods, cluster, self._target, namespace
        )
        sample = next((pod for pod in pods if is_ready(pod)), pods[0])
        choice = choose_container(sample, self._container)
        self._container = choice.name
        if choice.guessed:
            self._fan_in.put(
                [
                    SessionNote(
                        f"Tapping container {choice.name!r} of {pod_name(sample)} (the first "
                        "that is not a known sidecar); name another with /container/NAME."
                    )
                ]
            )
        if not self._ports:
            self._ports = container_ports(sample, choice.name)
            if not self._ports:
                raise UserError(
                    f"Container {choice.name!r} of pod {pod_name(sample)} declares no "
                    "containerPorts; say which port to watch with -p PORT."
                )
        self._settings = AgentSettings(
            session=self._session,
            token=self._token,
            image=options.image,
            namespace=options.agent_namespace,
            ports=tuple(self._ports),
            privileged=options.privileged,
            idle_timeout=options.agent_idle_timeout,
            # The agent shares the pod's network namespace with the service and with agents
            # of other sessions: a fixed port could be taken.
            ephemeral_port=AGENT_PORT + 1 + secrets.randbelow(EPHEMERAL_PORTS),
        )
        await asyncio.to_thread(self._preflight, cluster, namespace, sample)
        self._signals.install()

        ready = [pod for pod in pods if is_ready(pod)]
        chosen = ready[: self._max_pods] if self._max_pods else ready
        if len(chosen) < len(ready):
            self._fan_in.put(
                [
                    SessionNote(
                        f"Tapping {len(chosen)} of {len(ready)} ready pods "
                        f"(--max-pods {self._max_pods})."
                    )
                ]
            )
        if not ready:
            self._fan_in.put(
                [
                    SessionNote(
                        f"No pod of {self._target} is ready yet; podtap taps them as they "
                        "become ready."
                    )
                ]
            )
        for pod in chosen:
            self._tap(pod)
        starting = [t.starting for t in self._tapped.values() if t.starting is not None]
        await asyncio.gather(*starting, return_exceptions=True)
        if chosen and not any(t.agent for t in self._tapped.values()):
            raise UserError(self._first_failure or "No agent could start.")
        self._first_failure = None
        self._watch = PodWatch(cluster, query, version)
        self._watch.start()
        self._follower = asyncio.create_task(self._follow(self._watch), name="podtap pods")
        return self

    _first_failure: str | None = None

    def _preflight(self, cluster: Cluster, namespace: str, sample: Pod) -> None:
        check_permissions(cluster, needed_permissions(namespace, set(), ephemeral=True))

    # -- tapping pods ------------------------------------------------------------------------

    def _tap(self, pod: Pod) -> None:
        source = source_name(pod)
        tapped = TappedPod(pod)
        self._tapped[source] = tapped
        self._fan_in.put([SourceStatus(source, "starting", "Starting the agent.")])
        tapped.starting = asyncio.create_task(self._start(tapped), name=f"start {source}")

    async def _start(self, tapped: TappedPod) -> None:
        cluster, settings = self._cluster, self._settings
        assert cluster is not None
        assert settings is not None
        pod, source = tapped.pod, source_name(tapped.pod)
        try:
            agent = await asyncio.to_thread(
                agents.start_ephemeral_agent,
                cluster,
                settings,
                pod,
                self._timeout,
                tapped.cancelled,
            )
        except (agents.AgentFailed, UserError) as failure:
            if tapped.cancelled.is_set():
                return
            self._first_failure = self._first_failure or str(failure)
            self._fan_in.put([SourceStatus(source, "failed", str(failure))])
            return
        except Exception as error:
            if tapped.cancelled.is_set():
                return
            sentence = f"The agent for {source} could not start: {_describe(error)}."
            self._first_failure = self._first_failure or sentence
            self._fan_in.put([SourceStatus(source, "failed", sentence)])
            return
        if tapped.cancelled.is_set():
            return
        connector = AgentConnector(
            cluster,
            agent,
            self._token,
            self._timeout,
            partial(agents.agent_failure, cluster, settings, agent, pod),
        )
        try:
            await connector.prime()
        except Exception as error:
            if tapped.cancelled.is_set():
                return
            sentence = (
                str(error)
                if isinstance(error, UserError)
                else (f"The agent for {source} does not answer: {_describe(error)}.")
            )
            self._first_failure = self._first_failure or sentence
            self._fan_in.put([SourceStatus(source, "failed", sentence)])
            return
        tapped.agent = agent
        tapped.connector = connector
        self.connectors[source] = connector
        self._fan_in.add(source, AgentStream(source, connector, self._token))

    async def _untap(self, source: str, sentence: str) -> None:
        tapped = self._tapped.pop(source, None)
        if tapped is None:
            return
        tapped.cancelled.set()
        if tapped.starting is not None and not tapped.starting.done():
            tapped.starting.cancel()
        await self._fan_in.remove(source)
        self.connectors.pop(source, None)
        self._fan_in.put([SourceStatus(source, "gone", sentence)])

    async def _follow(self, pod_watch: PodWatch) -> None:
        while True:
            change = await pod_watch.changes.get()
            try:
                await self._apply(change)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._fan_in.put([SessionNote(f"Following the pods failed once: {error}.")])

    async def _apply(self, change: PodChange) -> None:
        if change.kind == "SYNC":
            present = {source_name(pod): pod for pod in change.pods}
            for source in list(self._tapped):
                if source not in present:
                    await self._untap(source, f"Pod {source} is gone.")
            for pod in change.pods:
                await self._consider(pod)
            return
        pod = change.pods[0]
        if change.kind == "DELETED":
            await self._untap(source_name(pod), f"Pod {source_name(pod)} was deleted.")
            return
        await self._consider(pod)

    async def _consider(self, pod: Pod) -> None:
        source = source_name(pod)
        tapped = self._tapped.get(source)
        if tapped is not None and tapped.uid and tapped.uid != pod["metadata"].get("uid"):
            await self._untap(source, f"Pod {source} was replaced by a new pod of that name.")
            tapped = None
        if tapped is not None:
            if _leaving(pod):
                await self._untap(source, f"Pod {source} is going away.")
            else:
                tapped.pod = pod if tapped.agent is None else tapped.pod
            return
        if not is_ready(pod):
            return
        if self._max_pods and len(self._tapped) >= self._max_pods:
            return
        self._fan_in.put([SessionNote(f"Pod {source} is ready: tapping it too.")])
        self._tap(pod)

    # -- the stream --------------------------------------------------------------------------

    async def updates(self) -> AsyncIterator[Sequence[Update]]:
        async for batch in self._fan_in:
            yield batch

    @property
    def live_sources(self) -> list[str]:
        return [source for source, t in self._tapped.items() if t.agent is not None]

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
        if self._watch is not None:
            self._watch.stop()
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        for tapped in self._tapped.values():
            tapped.cancelled.set()
        # Let agents being started reach a stopping point rather than abandoning their
        # threads: a Job created after the deletion below would be left behind.
        starting = [
            t.starting
            for t in self._tapped.values()
            if t.starting is not None and not t.starting.done()
        ]
        if starting:
            await asyncio.wait(starting, timeout=CLEANUP_TIMEOUT)
        for connector in self.connectors.values():
            connector.cut()
        await self._fan_in.aclose()
        # Nothing to delete: an ephemeral container cannot be removed from its pod; its agent
        # exits once nobody has listened for its idle timeout.
        if self._cluster is not None:
            self._cluster.close()


def _leaving(pod: Pod) -> bool:
    status = pod.get("status") or {}
    return bool(pod["metadata"].get("deletionTimestamp")) or status.get("phase") in (
        "Failed",
        "Succeeded",
    )


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return status_message(error)
    return str(error) or type(error).__name__
