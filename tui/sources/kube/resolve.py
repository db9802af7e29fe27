"""From a target (``deployment/web``, ``service/api``, ``label/app=x``...) to the pods it means.

A target becomes a *pod query* (namespace + label selector, or one pod's name) so that the same
query both lists the pods now and watches for the ones that come later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.errors import UserError
from tui.sources.kube.agent_spec import APP_LABEL, APP_VALUE
from tui.sources.kube.cluster import ApiException, Cluster, Json, call, status_message
from tui.sources.kube.pods import Pod, pod_name
from tui.targets import KubeTarget


@dataclass(frozen=True, slots=True)
class PodQuery:
    namespace: str
    label_selector: str | None
    name: str | None = None
    """Set for ``pod/NAME``: that pod alone."""

    def matches(self, pod: Pod) -> bool:
        """The query's own pods, never podtap's agents (a broad label target could match)."""
        labels = pod["metadata"].get("labels") or {}
        if labels.get(APP_LABEL) == APP_VALUE:
            return False
        return self.name is None or pod_name(pod) == self.name

    @property
    def field_selector(self) -> str | None:
        return f"metadata.name={self.name}" if self.name else None


def selector_string(selector: Json | None) -> str:
    """A LabelSelector (matchLabels + matchExpressions) in the query-string syntax."""
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = ",".join(sorted(expression.get("values") or []))
        if operator == "In":
            terms.append(f"{key} in ({values})")
        elif operator == "NotIn":
            terms.append(f"{key} notin ({values})")
        elif operator == "Exists":
            terms.append(key)
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def newest_owned(items: list[Json], owner_uid: str) -> Json | None:
    """The most recently created object controlled by ``owner_uid`` (a CronJob's newest Job)."""
    owned = [
        item
        for item in items
        if any(ref.get("uid") == owner_uid for ref in item["metadata"].get("ownerReferences") or [])
    ]
    owned.sort(
        key=lambda item: (item["metadata"].get("creationTimestamp") or "", item["metadata"]["name"])
    )
    return owned[-1] if owned else None


def _workload_selector(obj: Json) -> str:
    selector = selector_string(obj["spec"].get("selector"))
    if not selector:
        labels = ((obj["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return selector


def build_query(cluster: Cluster, target: KubeTarget, namespace: str) -> PodQuery:
    """Blocking: reads the target object. Raises UserError when it does not exist."""
    kind, name = target.kind, target.name
    if kind == "pod":
        return PodQuery(namespace, None, name)
    if kind == "label":
        return PodQuery(namespace, name)
    # Looked up lazily: each API group's client module takes a second or more to import.
    readers: dict[str, Callable[[], Callable[..., Any]]] = {
        "deployment": lambda: cluster.apps.read_namespaced_deployment,
        "statefulset": lambda: cluster.apps.read_namespaced_stateful_set,
        "daemonset": lambda: cluster.apps.read_namespaced_daemon_set,
        "replicaset": lambda: cluster.apps.read_namespaced_replica_set,
        "job": lambda: cluster.batch.read_namespaced_job,
        "cronjob": lambda: cluster.batch.read_namespaced_cron_job,
        "service": lambda: cluster.core.read_namespaced_service,
    }
    obj = read_object(readers[kind](), kind, name, namespace)
    if kind == "service":
        labels = obj["spec"].get("selector") or {}
        if not labels:
            raise UserError(
                f"Service {name} has no pod selector, so no pods stand behind it; "
                "tap its pods with pod/NAME or label/k=v instead."
            )
        return PodQuery(namespace, ",".join(f"{k}={v}" for k, v in sorted(labels.items())))
    if kind == "cronjob":
        jobs = call(cluster.batch.list_namespaced_job, namespace)["items"]
        job = newest_owned(jobs, obj["metadata"]["uid"])
        if job is None:
            raise UserError(
                f"CronJob {name} has no Job yet; wait for its next run or tap job/NAME."
            )
        return PodQuery(namespace, _workload_selector(job))
    return PodQuery(namespace, _workload_selector(obj))


def read_object(reader: Callable[..., Any], kind: str, name: str, namespace: str) -> Json:
    try:
        return call(reader, name, namespace)
    except ApiException as error:
        if error.status == 404:
            raise UserError(f"There is no {kind} {name!r} in namespace {namespace!r}.") from None
        if error.status in (401, 403):
            raise UserError(
                f"Your Kubernetes user may not read {kind} {name!r}: {status_message(error)}."
            ) from None
        raise


def list_pods(cluster: Cluster, query: PodQuery) -> tuple[list[Pod], str]:
    """Blocking: the pods the query matches now, and the resourceVersion to watch from."""
    try:
        result = call(
            cluster.core.list_namespaced_pod,
            query.namespace,
            label_selector=query.label_selector or None,
            field_selector=query.field_selector,
        )
    except ApiException as error:
        if error.status in (401, 403):
            raise UserError(
                f"Your Kubernetes user may not list pods: {status_message(error)}."
            ) from None
        raise
    pods = [pod for pod in result.get("items") or [] if query.matches(pod)]
    for pod in pods:
        # Items of a list carry no namespace on some servers; every consumer needs it.
        pod["metadata"].setdefault("namespace", query.namespace)
    if query.name is not None and not pods:
        raise UserError(f"There is no pod {query.name!r} in namespace {query.namespace!r}.")
    pods.sort(key=pod_name)
    return pods, str((result.get("metadata") or {}).get("resourceVersion") or "")


def target_pods(
    cluster: Cluster, target: KubeTarget, namespace: str
) -> tuple[PodQuery, list[Pod], str]:
    """Blocking: the query for ``target``'s pods, the pods it matches now and the
    resourceVersion to watch from. Raises UserError when the API refuses or there are none:
    a session can tap nothing then."""
    try:
        query = build_query(cluster, target, namespace)
        pods, version = list_pods(cluster, query)
    except ApiException as error:
        raise UserError(f"The Kubernetes API refused to answer: {status_message(error)}.") from None
    if not pods:
        raise UserError(
            f"{target} has no pods in namespace {namespace!r}; scale it up or check "
            "the name and namespace."
        )
    return query, pods, version
