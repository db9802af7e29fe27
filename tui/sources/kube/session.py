"""A session on a Kubernetes target: one agent per ready pod, one stream per agent, all merged.

Entering it resolves the target, runs the pre-flight checks, starts the first agents and waits
until they run; it then follows the target's pods (new ready pods are tapped, deleted ones are
marked gone). Leaving it, however that happens, deletes every agent it created.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import secrets
import signal
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Self

from agent.errors import UserError
from tui.model.updates import SessionNote, SourceStatus, Update
from tui.sources.kube import agents
from tui.sources.kube.agent_spec import DEFAULT_AGENT_IMAGE, AgentSettings, dry_run_pod
from tui.sources.kube.cluster import (
    ApiException,
    Cluster,
    Unreachable,
    connect,
    status_message,
    unreachable_sentence,
)
from tui.sources.kube.pod_watch import PodChange, PodWatch
from tui.sources.kube.pods import (
    Pod,
    choose_container,
    container_id,
    container_ports,
    is_ready,
    pod_name,
    source_name,
)
from tui.sources.kube.portforward import AgentConnector
from tui.sources.kube.preflight import check_permissions, check_pod_security, needed_permissions
from tui.sources.kube.resolve import build_query, list_pods
from tui.sources.stream import AgentStream, UpdateFanIn
from tui.targets import KubeTarget

CLEANUP_TIMEOUT = 20.0


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


class KubeSession:
    def __init__(self, target: KubeTarget, args: argparse.Namespace) -> None:
        self.description = str(target)
        self._target = target
        self._args = args
        self._ports: list[int] = list(getattr(args, "ports", None) or [])
        self._max_pods: int | None = getattr(args, "max_pods", None)
        self._ephemeral = bool(getattr(args, "ephemeral", False))
        self._timeout = float(getattr(args, "agent_timeout", None) or 60.0)
        self._session = secrets.token_hex(4)
        self._token = secrets.token_urlsafe(24)
        self._cluster: Cluster | None = None
        self._settings: AgentSettings | None = None
        self._container = target.container
        self._tapped: dict[str, TappedPod] = {}
        self._agent_namespaces: set[str] = set()
        self._fan_in = UpdateFanIn()
        self._watch: PodWatch | None = None
        self._follower: asyncio.Task[None] | None = None
        self._signals: list[signal.Signals] = []
        self._owner: asyncio.Task[object] | None = None
        self._closed = False
        self.connectors: dict[str, AgentConnector] = {}
        """Per source, how its agent is reached (tests cut port-forwards through it)."""

    @property
    def session_id(self) -> str:
        return self._session

    # -- entering ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        args = self._args
        cluster = await asyncio.to_thread(connect, args.kubeconfig, args.context)
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
        namespace = self._args.namespace or cluster.namespace
        try:
            query = await asyncio.to_thread(build_query, cluster, self._target, namespace)
            pods, version = await asyncio.to_thread(list_pods, cluster, query)
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
            self._fan_in.put([SessionNote(
                f"Tapping container {choice.name!r} of {pod_name(sample)} (the first that is "
                "not a known sidecar); name another with /container/NAME."
            )])
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
            image=getattr(self._args, "agent_image", None) or DEFAULT_AGENT_IMAGE,
            namespace=getattr(self._args, "agent_namespace", None),
            ports=tuple(self._ports),
            privileged=bool(getattr(self._args, "privileged", False)),
            idle_timeout=int(getattr(self._args, "agent_idle_timeout", None) or 30),
        )
        await asyncio.to_thread(self._preflight, cluster, namespace, sample)
        self._install_signal_handlers()
        atexit.register(self._cleanup_at_exit)

        ready = [pod for pod in pods if is_ready(pod)]
        chosen = ready[: self._max_pods] if self._max_pods else ready
        if len(chosen) < len(ready):
            self._fan_in.put([SessionNote(
                f"Tapping {len(chosen)} of {len(ready)} ready pods (--max-pods {self._max_pods})."
            )])
        if not ready:
            self._fan_in.put([SessionNote(
                f"No pod of {self._target} is ready yet; podtap taps them as they become ready."
            )])
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
        settings = self._settings
        assert settings is not None
        agent_namespace = settings.namespace or namespace
        check_permissions(
            cluster,
            needed_permissions(namespace, {agent_namespace}, ephemeral=self._ephemeral),
        )
        if self._ephemeral:
            return
        runtime_id = container_id(sample, self._container or "")
        if runtime_id is not None:
            check_pod_security(
                cluster, agent_namespace, dry_run_pod(settings, sample, runtime_id)
            )

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
            if self._ephemeral:
                agent = await asyncio.to_thread(
                    agents.start_ephemeral_agent, cluster, settings, pod,
                    self._timeout, tapped.cancelled,
                )
            else:
                runtime_id = container_id(pod, self._container or "")
                if runtime_id is None:
                    raise agents.AgentFailed(
                        f"Pod {source} reports no id for container {self._container!r} yet."
                    )
                self._agent_namespaces.add(settings.agent_namespace(pod))
                agent = await asyncio.to_thread(
                    agents.start_job_agent, cluster, settings, pod, runtime_id,
                    self._timeout, tapped.cancelled,
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
            cluster, agent, self._token, self._timeout,
            partial(agents.agent_failure, cluster, settings, agent, pod),
        )
        try:
            await connector.prime()
        except Exception as error:
            if tapped.cancelled.is_set():
                return
            sentence = str(error) if isinstance(error, UserError) else (
                f"The agent for {source} does not answer: {_describe(error)}."
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
        agent, cluster = tapped.agent, self._cluster
        if agent is not None and agent.job is not None and cluster is not None:
            with contextlib.suppress(ApiException, OSError):
                await asyncio.to_thread(
                    agents.delete_agent_job, cluster, agent.namespace, agent.job,
                    self._session, pod_name(tapped.pod),
                )

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
        self._remove_signal_handlers()
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
        starting = [t.starting for t in self._tapped.values()
                    if t.starting is not None and not t.starting.done()]
        if starting:
            await asyncio.wait(starting, timeout=CLEANUP_TIMEOUT)
        await self._fan_in.aclose()
        for connector in self.connectors.values():
            connector.cut()
        # Shielded: a second Ctrl+C while deleting must not leave agents behind.
        deleting = asyncio.ensure_future(asyncio.to_thread(self._delete_agents))
        try:
            await asyncio.wait_for(asyncio.shield(deleting), CLEANUP_TIMEOUT)
        except (asyncio.CancelledError, TimeoutError):
            await asyncio.wait([deleting], timeout=CLEANUP_TIMEOUT)
        atexit.unregister(self._cleanup_at_exit)
        if self._cluster is not None:
            self._cluster.close()

    def _delete_agents(self) -> None:
        cluster = self._cluster
        if cluster is None or self._ephemeral or not self._agent_namespaces:
            return
        with contextlib.suppress(ApiException, OSError):
            agents.delete_session_agents(cluster, set(self._agent_namespaces), self._session)

    def _cleanup_at_exit(self) -> None:
        """Last resort when the process ends without leaving the session (e.g. sys.exit in a
        signal handler elsewhere): agents must not outlive podtap."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._delete_agents()

    def _install_signal_handlers(self) -> None:
        """SIGTERM and SIGHUP end the session like Ctrl+C does. A command that handles SIGTERM
        itself (``dump`` does) keeps doing so, and SIGHUP is routed to it; otherwise the task
        that entered the session is cancelled, which runs the cleanup."""
        loop = asyncio.get_running_loop()
        self._owner = asyncio.current_task()
        if threading.current_thread() is not threading.main_thread():
            return
        command_stops_on_term = signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is not signal.SIG_DFL:
                continue
            if sig == signal.SIGHUP and command_stops_on_term:
                loop.add_signal_handler(sig, signal.raise_signal, signal.SIGTERM)
            else:
                loop.add_signal_handler(sig, self._on_signal)
            self._signals.append(sig)

    def _on_signal(self) -> None:
        if self._owner is not None:
            self._owner.cancel()

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()


def _leaving(pod: Pod) -> bool:
    status = pod.get("status") or {}
    return bool(pod["metadata"].get("deletionTimestamp")) or status.get("phase") in (
        "Failed", "Succeeded"
    )


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return status_message(error)
    return str(error) or type(error).__name__
