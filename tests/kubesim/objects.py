"""Creating and deleting objects with the API server's own semantics: defaulting, Pod Security
admission, graceful pod deletion, owner-reference cascades, and Events."""

from __future__ import annotations

import copy
import secrets
import uuid
from typing import Any

from tests.kubesim import admission
from tests.kubesim.errors import ApiError
from tests.kubesim.resources import EVENT, JOB, NAMESPACE, POD, RESOURCES, ResourceType
from tests.kubesim.store import Object, Store, now_rfc3339

# The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


def _default_container(container: dict[str, Any]) -> None:
    container.setdefault("imagePullPolicy", "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")


def default_pod(pod: Object) -> None:
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("tolerations", [])
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        _default_container(container)
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", qos_class(pod))


def qos_class(pod: Object) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits")
        and all(
            (r.get("requests") or r["limits"]).get(k) == r["limits"].get(k)
            for k in ("cpu", "memory")
        )
        and {"cpu", "memory"} <= set(r["limits"])
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _default_job(job: Object) -> None:
    meta, spec = job["metadata"], job.setdefault("spec", {})
    uid = meta["uid"]
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    if not spec.get("manualSelector"):
        generated = {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid}
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels.update(generated)
        labels.setdefault("batch.kubernetes.io/job-name", meta["name"])
        labels.setdefault("job-name", meta["name"])
    template.setdefault("spec", {}).setdefault("restartPolicy", "Never")
    job.setdefault("status", {})


def _validate(rt: ResourceType, obj: Object) -> None:
    name = obj["metadata"]["name"]
    if rt is POD:
        containers = (obj.get("spec") or {}).get("containers")
        if not containers:
            raise ApiError.invalid(
                rt.group_resource, name, rt.kind, "spec.containers: Required value"
            )
        for container in containers:
            if not container.get("image"):
                raise ApiError.invalid(
                    rt.group_resource,
                    name,
                    rt.kind,
                    f"spec.containers[{containers.index(container)}].image: Required value",
                )
    if rt is JOB:
        policy = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "restartPolicy"
        )
        if policy not in ("Never", "OnFailure"):
            raise ApiError.invalid(
                rt.group_resource,
                name,
                rt.kind,
                f'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", '
                f'"Never" (got "{policy}")',
            )


def create(store: Store, rt: ResourceType, body: Object, *, dry_run: bool = False) -> Object:
    """Create as the API server does after authorization: name generation, defaults,
    validation, namespace existence, Pod Security admission; ``dry_run`` stops before
    storing."""
    obj = copy.deepcopy(body)
    meta = obj.setdefault("metadata", {})
    for server_owned in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
        meta.pop(server_owned, None)
    if not meta.get("name"):
        if not meta.get("generateName"):
            raise ApiError.invalid(
                rt.group_resource,
                "",
                rt.kind,
                "metadata.name: Required value: name or generateName is required",
            )
        meta["name"] = meta["generateName"] + random_suffix()
    if rt.namespaced:
        namespace = meta.setdefault("namespace", "default")
        ns_obj = store.get(NAMESPACE, None, namespace)
        if ns_obj is None:
            raise ApiError.not_found("namespaces", namespace, "", "namespaces")
        if ns_obj.get("status", {}).get("phase") == "Terminating":
            raise ApiError.forbidden(
                rt.group_resource,
                meta["name"],
                f"unable to create new content in namespace {namespace} "
                f"because it is being terminated",
                rt.group,
                rt.plural,
            )
    else:
        meta.pop("namespace", None)
    meta["uid"] = str(uuid.uuid4())
    if rt is POD:
        default_pod(obj)
    elif rt is JOB:
        _default_job(obj)
    elif rt is NAMESPACE:
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
    _validate(rt, obj)
    if rt is POD:
        admission.check_pod_security(namespace_labels(store, meta["namespace"]), obj)
    if store.get(rt, meta.get("namespace"), meta["name"]) is not None:
        raise ApiError.already_exists(rt.group_resource, meta["name"], rt.group, rt.plural)
    if dry_run:
        meta["creationTimestamp"] = now_rfc3339()
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        return obj
    return store.create(rt, obj)


def namespace_labels(store: Store, namespace: str) -> dict[str, str]:
    ns_obj = store.get(NAMESPACE, None, namespace) or {}
    return dict((ns_obj.get("metadata") or {}).get("labels") or {})


def dependents(store: Store, owner_uid: str) -> list[tuple[ResourceType, Object]]:
    found = []
    for rt in RESOURCES:
        for obj in store.list(rt):
            if any(
                ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or []
            ):
                found.append((rt, obj))
    return found


def default_propagation(rt: ResourceType) -> str:
    # batch/v1 Jobs keep the legacy default of orphaning their pods (kubectl passes
    # Background explicitly); everything else cascades in the background.
    return "Orphan" if rt is JOB else "Background"


def delete(
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    name: str,
    *,
    propagation: str | None = None,
    grace_seconds: int | None = None,
    dry_run: bool = False,
) -> Object:
    """Delete with the API's semantics and return the object as the API does (a pod being
    shut down comes back with its deletionTimestamp set)."""
    obj = store.require(rt, namespace, name)
    propagation = propagation or default_propagation(rt)
    if dry_run:
        return obj
    meta = obj["metadata"]
    if propagation == "Orphan":
        for dependent_rt, dependent in dependents(store, meta["uid"]):
            refs = [
                r
                for r in dependent["metadata"].get("ownerReferences") or []
                if r.get("uid") != meta["uid"]
            ]
            dependent["metadata"]["ownerReferences"] = refs
            if not refs:
                dependent["metadata"].pop("ownerReferences")
            store.update(dependent_rt, dependent)
    if rt is POD and _runs_on_a_node(obj):
        grace = obj["spec"].get("terminationGracePeriodSeconds", 30)
        if grace_seconds is not None:
            grace = grace_seconds
        if meta.get("deletionTimestamp") is None:
            meta["deletionTimestamp"] = now_rfc3339()
            meta["deletionGracePeriodSeconds"] = grace
            return store.update(rt, obj)
        if grace_seconds == 0 and meta.get("deletionGracePeriodSeconds") != 0:
            meta["deletionGracePeriodSeconds"] = 0
            return store.update(rt, obj)
        return obj
    if propagation == "Foreground" and dependents(store, meta["uid"]):
        # The owner stays, marked, until the garbage collector has removed its dependents.
        if meta.get("deletionTimestamp") is None:
            meta["deletionTimestamp"] = now_rfc3339()
            meta["deletionGracePeriodSeconds"] = 0
            meta["finalizers"] = [*(meta.get("finalizers") or []), "foregroundDeletion"]
            return store.update(rt, obj)
        return obj
    if rt is NAMESPACE:
        for member_rt in RESOURCES:
            if member_rt.namespaced:
                for member in store.list(member_rt, name):
                    delete(
                        store,
                        member_rt,
                        name,
                        member["metadata"]["name"],
                        propagation="Background",
                        grace_seconds=0,
                    )
    removed = store.remove(rt, namespace, name)
    return removed if removed is not None else obj


def _runs_on_a_node(pod: Object) -> bool:
    """A pod a kubelet may be running: bound to a node and not finished."""
    return bool(pod["spec"].get("nodeName")) and pod.get("status", {}).get("phase") not in (
        "Succeeded",
        "Failed",
    )


def record_event(
    store: Store, involved: Object, event_type: str, reason: str, message: str, component: str
) -> None:
    """Record an Event about ``involved``, counting repeats like the event recorder does."""
    meta = involved["metadata"]
    namespace = meta.get("namespace") or "default"
    for event in store.list(EVENT, namespace):
        ref = event["involvedObject"]
        if (
            ref.get("uid") == meta["uid"]
            and event["reason"] == reason
            and (event["message"] == message)
        ):
            event["count"] = event.get("count", 1) + 1
            event["lastTimestamp"] = now_rfc3339()
            store.update(EVENT, event)
            return
    stamp = now_rfc3339()
    store.create(
        EVENT,
        {
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": {
                "kind": involved["kind"],
                "namespace": meta.get("namespace"),
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": involved["apiVersion"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": component},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": "",
        },
    )
