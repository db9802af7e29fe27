"""Node agents on the cluster: create one (a Job and the Secret holding its token) and the
ConfigMap with the agent's code, say why an agent has no pod, delete what a session made.
Blocking calls: the session runs them in its pool of API threads."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from agent.errors import UserError
from tui.sources.kube.agent_bundle import bundle_configmap, bundle_name
from tui.sources.kube.agent_spec import (
    APP_LABEL,
    APP_VALUE,
    AgentSettings,
    node_agent_job,
    session_selector,
    token_secret,
)
from tui.sources.kube.agents import AgentFailed, job_create_failure, refusal
from tui.sources.kube.cluster import (
    ApiException,
    Cluster,
    Json,
    Unreachable,
    call,
    delete_unless_gone,
)
from tui.sources.kube.preflight import pod_security_sentence

# Leaving must be quick: calls short enough that a stuck API server cannot hold the exit up,
# and, when collection deletes are refused, enough of them at once for a Job and a pod per
# node at 20 to 30 nodes.
DELETE_TIMEOUT = (3, 5)
DELETE_CONCURRENCY = 16


def create_node_agent(
    cluster: Cluster, settings: AgentSettings, node: str, namespace: str, attempt: int
) -> tuple[str, str]:
    """Create the agent Job of ``node`` and its token Secret; returns the Job's name and uid.
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
    return name, str(created["metadata"]["uid"])


def create_code_configmap(cluster: Cluster, settings: AgentSettings, namespace: str) -> None:
    """The session's ConfigMap with the agent's zipapp (raises UserError with one sentence)."""
    try:
        call(cluster.core.create_namespaced_config_map, namespace,
             bundle_configmap(settings, namespace))  # fmt: skip
    except ApiException as error:
        raise UserError(
            refusal(error, namespace, "create the ConfigMap with the agent's code")
            + " Or run an agent image with podtap installed: --agent-from-image."
        ) from None


def own_code_configmap(
    cluster: Cluster, settings: AgentSettings, namespace: str, jobs: list[tuple[str, str]]
) -> None:
    """Make the session's agent Jobs the owners of its ConfigMap: Kubernetes deletes it once
    the last of them is gone, should podtap not live to do it."""
    owners = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid} for name, uid in jobs
    ]
    patch = {"metadata": {"ownerReferences": owners}}
    with contextlib.suppress(ApiException):
        call(
            cluster.core.patch_namespaced_config_map,
            bundle_name(settings.session),
            namespace,
            patch,
            _content_type="application/merge-patch+json",
        )


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
    """Every Job, agent pod, token Secret and code ConfigMap of the session: one collection
    delete per kind, the four at once. A listing, then a delete per Job and per pod, cost a
    round trip per handful of agents: at 30 nodes on a busy API server, ten seconds to leave.
    A kind whose collection delete is refused (a Role without ``deletecollection``) is listed
    and deleted one object at a time, still all at once.
    Failures are left to the agents' idle timeout and the Jobs' TTL."""
    selector = session_selector(session)
    core, batch = cluster.core, cluster.batch
    kinds = [
        _Kind(batch.delete_collection_namespaced_job, batch.list_namespaced_job,
              batch.delete_namespaced_job, {"propagation_policy": "Background"}),
        _Kind(core.delete_collection_namespaced_pod, core.list_namespaced_pod,
              core.delete_namespaced_pod, {"grace_period_seconds": 0}),
    ]  # fmt: skip
    with ThreadPoolExecutor(DELETE_CONCURRENCY, thread_name_prefix="podtap delete") as pool:
        collections = [
            pool.submit(_collection_deleted, kind.delete_all, namespace, label_selector=selector,
                        **kind.options)
            for kind in kinds
        ]  # fmt: skip
        for delete_all in (
            core.delete_collection_namespaced_secret,
            core.delete_collection_namespaced_config_map,
        ):
            pool.submit(_quietly, delete_all, namespace, label_selector=selector)
        # Listed together before any is deleted: a pod goes with its Job.
        listings = [
            (pool.submit(_listed, kind.listing, namespace, selector), kind)
            for kind, deleted in zip(kinds, collections, strict=True)
            if not deleted.result()
        ]
        for listed, kind in listings:
            for item in listed.result():
                name = item["metadata"]["name"]
                pool.submit(_quietly, kind.delete_one, name, namespace, **kind.options)


@dataclass(frozen=True, slots=True)
class _Kind:
    """How the session's objects of one kind go: all at once, else listed and one by one."""

    delete_all: Callable[..., Any]
    listing: Callable[..., Any]
    delete_one: Callable[..., Any]
    options: dict[str, Any]


def _collection_deleted(method: Callable[..., Any], *args: object, **kwargs: object) -> bool:
    """False when the API refused the collection delete (forbidden, not offered): the objects
    are then deleted one by one. An API server out of reach gets no second try."""
    try:
        method(*args, _preload_content=False, _request_timeout=DELETE_TIMEOUT, **kwargs)
    except ApiException:
        return False
    except Unreachable:
        pass
    return True


def _listed(method: Callable[..., Any], namespace: str, selector: str) -> list[Json]:
    try:
        listing = call(method, namespace, label_selector=selector, _request_timeout=DELETE_TIMEOUT)
    except (ApiException, *Unreachable):
        return []
    items: list[Json] = listing.get("items") or []
    return items


def _quietly(method: Callable[..., Any], *args: object, **kwargs: object) -> None:
    with contextlib.suppress(ApiException, *Unreachable):
        method(*args, _preload_content=False, _request_timeout=DELETE_TIMEOUT, **kwargs)


def find_session_data(cluster: Cluster, namespace: str | None) -> list[tuple[Json, str]]:
    """Every podtap token Secret and code ConfigMap (with its kind), in one namespace or
    (None) in all of them."""
    core = cluster.core
    listings: list[tuple[Callable[..., Any], str]] = (
        [(core.list_secret_for_all_namespaces, "Secret"),
         (core.list_config_map_for_all_namespaces, "ConfigMap")]
        if namespace is None
        else [(partial(core.list_namespaced_secret, namespace), "Secret"),
              (partial(core.list_namespaced_config_map, namespace), "ConfigMap")]
    )  # fmt: skip
    found = []
    for listing, kind in listings:
        for item in call(listing, label_selector=f"{APP_LABEL}={APP_VALUE}")["items"]:
            item["metadata"].setdefault("namespace", namespace)
            found.append((item, kind))
    return found


def delete_session_object(cluster: Cluster, item: Json, kind: str) -> None:
    """Delete a token Secret or code ConfigMap that a session left (gone already: done)."""
    meta = item["metadata"]
    delete = (
        cluster.core.delete_namespaced_secret
        if kind == "Secret"
        else cluster.core.delete_namespaced_config_map
    )
    delete_unless_gone(delete, meta["name"], meta["namespace"])
