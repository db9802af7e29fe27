"""Agents on the cluster: start an ephemeral one in a target pod and wait until it runs, say
why an agent fails, find and delete what sessions left.

Blocking calls (the client is synchronous); the sessions run them in threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from tui.sources.kube.agent_spec import (
    AGENT_CONTAINER,
    APP_LABEL,
    APP_VALUE,
    AgentSettings,
    ephemeral_patch,
    session_selector,
)
from tui.sources.kube.agent_status import agent_container_state, last_meaningful_line
from tui.sources.kube.cluster import (
    ApiException,
    Cluster,
    Json,
    call,
    delete_unless_gone,
    status_message,
)
from tui.sources.kube.pods import Pod, pod_name, pod_namespace, source_name
from tui.sources.kube.preflight import pod_security_sentence

POLL_INTERVAL = 0.3


@dataclass(frozen=True, slots=True)
class RunningAgent:
    """Where a started agent can be reached: a port on a pod, through the API server."""

    source: str
    namespace: str
    pod: str
    port: int
    job: str | None


class AgentFailed(Exception):
    """The agent for one target pod could not start; the message is one sentence."""


def job_create_failure(cluster: Cluster, namespace: str, job: str) -> str | None:
    """Why the Job controller could not create the pod (admission refused it), if it said so."""
    body = call(cluster.batch.read_namespaced_job, job, namespace)
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("reason") == "FailedCreate" or condition.get("type") == "FailedCreate":
            return str(condition.get("message") or condition.get("reason"))
    try:
        events = call(
            cluster.core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.name={job}",
        )["items"]
    except ApiException:
        return None
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("name") == job and event.get("reason") == "FailedCreate":
            return str(event.get("message") or "FailedCreate")
    return None


def start_ephemeral_agent(
    cluster: Cluster,
    settings: AgentSettings,
    target: Pod,
    timeout: float,
    cancelled: threading.Event,
) -> RunningAgent:
    namespace, name = pod_namespace(target), pod_name(target)
    try:
        call(
            cluster.core.patch_namespaced_pod_ephemeralcontainers,
            name,
            namespace,
            ephemeral_patch(settings, target),
            _content_type="application/strategic-merge-patch+json",
        )
    except ApiException as error:
        raise AgentFailed(refusal(error, namespace, "add the agent container")) from None
    deadline = time.monotonic() + timeout
    last = "not started yet"
    while not cancelled.is_set():
        pod = call(cluster.core.read_namespaced_pod, name, namespace)
        state = agent_container_state(pod, settings.ephemeral_name, ephemeral=True)
        if state.phase == "running":
            return RunningAgent(source_name(target), namespace, name, settings.ephemeral_port, None)
        if state.phase == "failed":
            raise AgentFailed(
                _failure_sentence(
                    cluster, target, pod, settings.ephemeral_name, state.detail, state.wants_log
                )
            )
        last = state.detail
        if time.monotonic() > deadline:
            raise AgentFailed(
                f"The agent container in {source_name(target)} was not running after "
                f"{timeout:g} s ({last}); raise --agent-timeout."
            )
        cancelled.wait(POLL_INTERVAL)
    raise AgentFailed("cancelled")


def agent_failure(
    cluster: Cluster, settings: AgentSettings, agent: RunningAgent, target: Pod
) -> tuple[str, str] | None:
    """Why a started agent does not answer, if its pod says so: ("failed" or "gone", sentence).
    None while it still runs (it may not listen yet)."""
    container = AGENT_CONTAINER if agent.job else settings.ephemeral_name
    try:
        pod = call(cluster.core.read_namespaced_pod, agent.pod, agent.namespace)
    except ApiException as error:
        if error.status == 404:
            return "gone", f"The agent pod {agent.namespace}/{agent.pod} was deleted."
        return None
    state = agent_container_state(pod, container, ephemeral=agent.job is None)
    if state.phase != "failed":
        return None
    return "failed", _failure_sentence(
        cluster, target, pod, container, state.detail, state.wants_log
    )


def refusal(error: ApiException, namespace: str, action: str) -> str:
    message = status_message(error)
    if error.status == 403 and "PodSecurity" in message:
        return pod_security_sentence(namespace, message)
    if error.status == 403:
        return f"Your Kubernetes user may not {action} in namespace {namespace!r}: {message}."
    return f"Could not {action} in namespace {namespace!r}: {message}."


def _failure_sentence(
    cluster: Cluster, target: Pod, agent_pod: Pod, container: str, detail: str, wants_log: bool
) -> str:
    sentence = f"The agent for {source_name(target)} failed: {detail}"
    if wants_log:
        said = last_log_line(
            cluster,
            pod_namespace(agent_pod) or pod_namespace(target),
            pod_name(agent_pod),
            container,
        )
        if said:
            sentence += f"; it said: {said}"
    return sentence.rstrip(".") + "."


def last_log_line(cluster: Cluster, namespace: str, pod: str, container: str) -> str:
    try:
        response: Any = cluster.core.read_namespaced_pod_log(
            pod, namespace, container=container, tail_lines=20, _preload_content=False
        )
        return last_meaningful_line(response.data.decode("utf-8", "replace"))
    except (ApiException, OSError, ValueError):
        return ""


def delete_session_agents(cluster: Cluster, namespaces: set[str], session: str) -> int:
    """Delete every Job and pod the session created; returns how many Jobs went."""
    deleted = 0
    for namespace in sorted(namespaces):
        deleted += _delete_jobs(cluster, namespace, session_selector(session))
        _delete_pods(cluster, namespace, session_selector(session))
    return deleted


LEFTOVER_SELECTOR = f"{APP_LABEL}={APP_VALUE}"


def find_leftovers(cluster: Cluster, namespace: str | None) -> tuple[list[Json], list[Json]]:
    """Every podtap Job and agent pod, in one namespace or (None) in all of them."""
    if namespace is None:
        jobs = call(cluster.batch.list_job_for_all_namespaces, label_selector=LEFTOVER_SELECTOR)[
            "items"
        ]
        pods = call(cluster.core.list_pod_for_all_namespaces, label_selector=LEFTOVER_SELECTOR)[
            "items"
        ]
    else:
        jobs = call(cluster.batch.list_namespaced_job, namespace, label_selector=LEFTOVER_SELECTOR)[
            "items"
        ]
        pods = call(cluster.core.list_namespaced_pod, namespace, label_selector=LEFTOVER_SELECTOR)[
            "items"
        ]
    return jobs, pods


def delete_job(cluster: Cluster, job: Json) -> None:
    """Delete an agent Job and, in the background, its pod (gone already: done)."""
    meta = job["metadata"]
    delete_unless_gone(
        cluster.batch.delete_namespaced_job,
        meta["name"],
        meta["namespace"],
        propagation_policy="Background",
    )


def delete_pod(cluster: Cluster, pod: Json) -> None:
    meta = pod["metadata"]
    delete_unless_gone(
        cluster.core.delete_namespaced_pod, meta["name"], meta["namespace"], grace_period_seconds=0
    )


def _delete_jobs(cluster: Cluster, namespace: str, selector: str) -> int:
    jobs = call(cluster.batch.list_namespaced_job, namespace, label_selector=selector)["items"]
    for job in jobs:
        job["metadata"].setdefault("namespace", namespace)
        delete_job(cluster, job)
    return len(jobs)


def _delete_pods(cluster: Cluster, namespace: str, selector: str) -> None:
    pods = call(cluster.core.list_namespaced_pod, namespace, label_selector=selector)["items"]
    for pod in pods:
        pod["metadata"].setdefault("namespace", namespace)
        delete_pod(cluster, pod)
