"""The Deployment, ReplicaSet, StatefulSet and DaemonSet controllers."""

from __future__ import annotations

import copy
import math

from tests.kubesim import objects
from tests.kubesim.controllers.common import (
    create_pod,
    is_active,
    is_ready,
    owned_pods,
    owner_reference,
    template_hash,
    write_status,
)
from tests.kubesim.resources import DAEMONSET, DEPLOYMENT, POD, REPLICASET, STATEFULSET
from tests.kubesim.store import Object, Store


def _revision(rs: Object) -> int:
    return int(
        (rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0")
    )


def _budget(value: int | str, replicas: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * replicas / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def rollout_targets(spec: Object, owned: list[Object], new_name: str) -> dict[str, int]:
    """The replicas each ReplicaSet of a Deployment should have now. A rolling update grows
    the new ReplicaSet within maxSurge and shrinks old ones only as far as maxUnavailable
    allows, counting ready pods; Recreate empties the old ones before starting the new."""
    replicas = spec.get("replicas", 1)
    targets = {rs["metadata"]["name"]: rs["spec"].get("replicas", 0) for rs in owned}
    old = sorted((rs for rs in owned if rs["metadata"]["name"] != new_name), key=_revision)
    if not old:
        return {new_name: replicas}
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        remaining = sum((rs.get("status") or {}).get("replicas", 0) for rs in old)
        return {**{rs["metadata"]["name"]: 0 for rs in old}, new_name: 0 if remaining else replicas}
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = _budget(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _budget(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    room = replicas + surge - sum(targets.values())
    targets[new_name] = min(replicas, targets[new_name] + max(0, room))
    ready = sum((rs.get("status") or {}).get("readyReplicas", 0) for rs in owned)
    removable = max(0, ready - (replicas - unavailable))
    for rs in old:
        name = rs["metadata"]["name"]
        not_ready = max(0, targets[name] - (rs.get("status") or {}).get("readyReplicas", 0))
        cut = min(targets[name], not_ready + removable)
        removable -= max(0, cut - not_ready)
        targets[name] -= cut
    return targets


def reconcile_deployment(store: Store, deployment: Object) -> None:
    if deployment["metadata"].get("deletionTimestamp"):
        return
    meta, spec = deployment["metadata"], deployment["spec"]
    pod_hash = template_hash(spec["template"])
    wanted = f"{meta['name']}-{pod_hash}"
    owned = [
        rs
        for rs in store.list(REPLICASET, meta["namespace"])
        if any(r.get("uid") == meta["uid"] for r in rs["metadata"].get("ownerReferences") or [])
    ]
    replicas = spec.get("replicas", 1)
    if not any(rs["metadata"]["name"] == wanted for rs in owned):
        template = copy.deepcopy(spec["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
        revision = 1 + max((_revision(rs) for rs in owned), default=0)
        rs = objects.create(
            store,
            REPLICASET,
            {
                "metadata": {
                    "name": wanted,
                    "namespace": meta["namespace"],
                    "labels": dict(template["metadata"]["labels"]),
                    "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                    "ownerReferences": [owner_reference(deployment)],
                },
                # A rollout starts the new ReplicaSet empty and grows it step by step.
                "spec": {
                    "replicas": 0 if owned else replicas,
                    "selector": selector,
                    "template": template,
                },
                "status": {"replicas": 0},
            },
        )
        owned.append(rs)
    targets = rollout_targets(spec, owned, wanted)
    for rs in owned:
        if rs["spec"].get("replicas") != targets[rs["metadata"]["name"]]:
            rs["spec"]["replicas"] = targets[rs["metadata"]["name"]]
            store.update(REPLICASET, rs)
    current = [rs.get("status") or {} for rs in owned]
    ready = sum(s.get("readyReplicas", 0) for s in current)
    updated = next(
        (
            rs.get("status", {}).get("replicas", 0)
            for rs in owned
            if rs["metadata"]["name"] == wanted
        ),
        0,
    )
    available = ready >= replicas
    write_status(
        store,
        DEPLOYMENT,
        deployment,
        {
            "observedGeneration": meta.get("generation", 1),
            "replicas": sum(s.get("replicas", 0) for s in current),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, replicas - ready),
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if available else "False",
                    "reason": "MinimumReplicasAvailable"
                    if available
                    else "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability."
                    if available
                    else "Deployment does not have minimum availability.",
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{wanted}" has successfully progressed.',
                },
            ],
        },
    )


def reconcile_replicaset(store: Store, rs: Object) -> None:
    if rs["metadata"].get("deletionTimestamp"):
        return
    pods = [p for p in owned_pods(store, rs) if is_active(p)]
    wanted = rs["spec"].get("replicas", 1)
    for _ in range(wanted - len(pods)):
        create_pod(store, rs, f"{rs['metadata']['name']}-{objects.random_suffix()}", {})
    if len(pods) > wanted:
        # Not-ready pods go first, then the youngest, as the ReplicaSet controller ranks.
        ranked = sorted(
            pods,
            key=lambda p: (is_ready(p), p["metadata"]["creationTimestamp"], p["metadata"]["name"]),
            reverse=False,
        )
        doomed = [p for p in ranked if not is_ready(p)]
        doomed += sorted(
            (p for p in ranked if is_ready(p)),
            key=lambda p: p["metadata"]["creationTimestamp"],
            reverse=True,
        )
        for pod in doomed[: len(pods) - wanted]:
            objects.delete(store, POD, pod["metadata"]["namespace"], pod["metadata"]["name"])
    pods = [p for p in owned_pods(store, rs) if is_active(p)]
    ready = sum(1 for p in pods if is_ready(p))
    write_status(
        store,
        REPLICASET,
        rs,
        {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        },
    )


def reconcile_statefulset(store: Store, sts: Object) -> None:
    name, wanted = sts["metadata"]["name"], sts["spec"].get("replicas", 1)
    revision = f"{name}-{template_hash(sts['spec']['template'])}"
    pods = {p["metadata"]["name"]: p for p in owned_pods(store, sts)}
    for ordinal in range(wanted):
        pod_name = f"{name}-{ordinal}"
        if pod_name not in pods:
            create_pod(
                store,
                sts,
                pod_name,
                {
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": str(ordinal),
                },
            )
    for pod_name, pod in pods.items():
        if int(pod_name.rsplit("-", 1)[1]) >= wanted and is_active(pod):
            objects.delete(store, POD, pod["metadata"]["namespace"], pod_name)
    active = [p for p in owned_pods(store, sts) if is_active(p)]
    ready = sum(1 for p in active if is_ready(p))
    write_status(
        store,
        STATEFULSET,
        sts,
        {
            "replicas": len(active),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": len(active),
            "updatedReplicas": len(active),
            "currentRevision": revision,
            "updateRevision": revision,
            "observedGeneration": sts["metadata"].get("generation", 1),
        },
    )


def reconcile_daemonset(store: Store, ds: Object, nodes: list[str]) -> None:
    pods = owned_pods(store, ds)
    covered = {p["spec"].get("nodeName") for p in pods if is_active(p)}
    for node in nodes:
        if node not in covered:
            create_pod(
                store,
                ds,
                f"{ds['metadata']['name']}-{objects.random_suffix()}",
                {"controller-revision-hash": template_hash(ds["spec"]["template"])},
                node=node,
            )
    active = [p for p in owned_pods(store, ds) if is_active(p)]
    ready = sum(1 for p in active if is_ready(p))
    write_status(
        store,
        DAEMONSET,
        ds,
        {
            "desiredNumberScheduled": len(nodes),
            "currentNumberScheduled": len(active),
            "numberReady": ready,
            "numberAvailable": ready,
            "updatedNumberScheduled": len(active),
            "numberMisscheduled": 0,
            "observedGeneration": ds["metadata"].get("generation", 1),
        },
    )
