"""Node agents on the cluster: create one (a Job and the Secret holding its token), say why
one has no pod, delete what a session made. Blocking calls: the session runs them in its pool
of API threads."""

from __future__ import annotations

import contextlib

from tui.sources.kube.agent_spec import (
    AgentSettings,
    node_agent_job,
    session_selector,
    token_secret,
)
from tui.sources.kube.agents import AgentFailed, delete_session_agents, job_create_failure, refusal
from tui.sources.kube.cluster import ApiException, Cluster, call
from tui.sources.kube.preflight import pod_security_sentence


def create_node_agent(
    cluster: Cluster, settings: AgentSettings, node: str, namespace: str, attempt: int
) -> str:
    """Create the agent Job of ``node`` and its token Secret; returns the Job's name.
    Raises AgentFailed with one sentence."""
    job = node_agent_job(settings, node, namespace, attempt)
    try:
        created = call(cluster.batch.create_namespaced_job, namespace, job)
    except ApiException as error:
        raise AgentFailed(refusal(error, namespace, "create the agent Job")) from None
    name = str(job["metadata"]["name"])
    # The pod waits for the Secret if it comes second (the kubelet retries); owned by the Job,
    # it cannot outlive it, which it could if it came first.
    secret = token_secret(settings, job, str(created["metadata"]["uid"]))
    try:
        call(cluster.core.create_namespaced_secret, namespace, secret)
    except ApiException as error:
        with contextlib.suppress(ApiException):
            cluster.batch.delete_namespaced_job(
                name, namespace, propagation_policy="Background", _preload_content=False
            )
        raise AgentFailed(refusal(error, namespace, "create the agent's token Secret")) from None
    return name


def why_no_agent_pod(cluster: Cluster, namespace: str, job: str) -> str | None:
    """Why the Job has no pod, if Kubernetes said (admission refused it)."""
    try:
        refused = job_create_failure(cluster, namespace, job)
    except ApiException:
        return None
    if refused and "PodSecurity" in refused:
        return pod_security_sentence(namespace, refused)
    return f"Kubernetes would not create the agent pod of Job {job}: {refused}" if refused else None


def delete_node_agents(cluster: Cluster, namespace: str, session: str) -> None:
    """Every Job, agent pod and token Secret of the session (Secrets also go with their Job)."""
    delete_session_agents(cluster, {namespace}, session)
    with contextlib.suppress(ApiException):
        cluster.core.delete_collection_namespaced_secret(
            namespace, label_selector=session_selector(session), _preload_content=False
        )
