"""The control plane's controllers, level-triggered: each pass compares desired and actual
state and writes only differences. Scheduler, Deployment, ReplicaSet, StatefulSet, DaemonSet,
Job (with TTL and active deadline), and the owner-reference garbage collector."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import cycle
from typing import Any

from tests.kubesim import objects
from tests.kubesim.errors import ApiError
from tests.kubesim.resources import (
    CRONJOB,
    DAEMONSET,
    DEPLOYMENT,
    JOB,
    POD,
    REPLICASET,
    RESOURCES,
    STATEFULSET,
    ResourceType,
)
from tests.kubesim.store import Object, Store, now_rfc3339


def _parse_time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _seconds_since(stamp: str) -> float:
    return (datetime.now(UTC) - _parse_time(stamp)).total_seconds()


def owner_reference(owner: Object) -> dict[str, Any]:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def template_hash(template: Any) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:10])


def _is_active(pod: Object) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and pod.get("status", {}).get(
        "phase") not in ("Succeeded", "Failed")


def _is_ready(pod: Object) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions") or [])


class Controllers:
    def __init__(self, store: Store, nodes: list[str]) -> None:
        self.store = store
        self.nodes = nodes
        self._next_node: Iterator[str] = cycle(nodes)

    def reconcile(self) -> None:
        self._collect_garbage()
        for deployment in self.store.list(DEPLOYMENT):
            self._deployment(deployment)
        for rs in self.store.list(REPLICASET):
            self._replicaset(rs)
        for sts in self.store.list(STATEFULSET):
            self._statefulset(sts)
        for ds in self.store.list(DAEMONSET):
            self._daemonset(ds)
        for job in self.store.list(JOB):
            self._job(job)
        for cronjob in self.store.list(CRONJOB):
            self._cronjob(cronjob)
        self._schedule()

    # -- helpers -----------------------------------------------------------------------------

    def _owned_pods(self, owner: Object) -> list[Object]:
        uid = owner["metadata"]["uid"]
        return [pod for pod in self.store.list(POD, owner["metadata"]["namespace"])
                if any(r.get("uid") == uid and r.get("controller")
                       for r in pod["metadata"].get("ownerReferences") or [])]

    def _create_pod(self, owner: Object, name: str, extra_labels: dict[str, str],
                    node: str | None = None) -> Object | None:
        template = copy.deepcopy(owner["spec"]["template"])
        meta = template.get("metadata") or {}
        pod: Object = {
            "metadata": {
                "name": name, "namespace": owner["metadata"]["namespace"],
                "labels": {**(meta.get("labels") or {}), **extra_labels},
                "annotations": dict(meta.get("annotations") or {}),
                "ownerReferences": [owner_reference(owner)],
            },
            "spec": template.get("spec") or {},
        }
        if node:
            pod["spec"]["nodeName"] = node
        try:
            return objects.create(self.store, POD, pod)
        except ApiError as refused:
            kind = owner["kind"]
            objects.record_event(self.store, owner, "Warning", "FailedCreate",
                                 f"Error creating: {refused.message}",
                                 f"{kind.lower()}-controller")
            return None

    def _write_status(self, rt: ResourceType, obj: Object, status: dict[str, Any]) -> None:
        merged = {**(obj.get("status") or {}), **status}
        if merged != obj.get("status"):
            obj["status"] = merged
            self.store.update(rt, obj)

    # -- scheduler ---------------------------------------------------------------------------

    def _schedule(self) -> None:
        for pod in self.store.list(POD):
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            pod["spec"]["nodeName"] = next(self._next_node)
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True",
                                            "lastProbeTime": None,
                                            "lastTransitionTime": now_rfc3339()}]
            self.store.update(POD, pod)
            objects.record_event(self.store, pod, "Normal", "Scheduled",
                                 f"Successfully assigned {pod['metadata']['namespace']}/"
                                 f"{pod['metadata']['name']} to {pod['spec']['nodeName']}",
                                 "default-scheduler")

    # -- workloads ---------------------------------------------------------------------------

    def _deployment(self, deployment: Object) -> None:
        if deployment["metadata"].get("deletionTimestamp"):
            return
        meta, spec = deployment["metadata"], deployment["spec"]
        pod_hash = template_hash(spec["template"])
        wanted = f"{meta['name']}-{pod_hash}"
        owned = [rs for rs in self.store.list(REPLICASET, meta["namespace"])
                 if any(r.get("uid") == meta["uid"]
                        for r in rs["metadata"].get("ownerReferences") or [])]
        replicas = spec.get("replicas", 1)
        if not any(rs["metadata"]["name"] == wanted for rs in owned):
            template = copy.deepcopy(spec["template"])
            template.setdefault("metadata", {}).setdefault("labels", {})[
                "pod-template-hash"] = pod_hash
            selector = copy.deepcopy(spec["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
            rs = objects.create(self.store, REPLICASET, {
                "metadata": {"name": wanted, "namespace": meta["namespace"],
                             "labels": dict(template["metadata"]["labels"]),
                             "annotations": {"deployment.kubernetes.io/revision": "1"},
                             "ownerReferences": [owner_reference(deployment)]},
                "spec": {"replicas": replicas, "selector": selector, "template": template},
                "status": {"replicas": 0},
            })
            owned.append(rs)
        for rs in owned:
            target = replicas if rs["metadata"]["name"] == wanted else 0
            if rs["spec"].get("replicas") != target:
                rs["spec"]["replicas"] = target
                self.store.update(REPLICASET, rs)
        current = [rs.get("status") or {} for rs in owned]
        ready = sum(s.get("readyReplicas", 0) for s in current)
        updated = next((rs.get("status", {}).get("replicas", 0) for rs in owned
                        if rs["metadata"]["name"] == wanted), 0)
        available = ready >= replicas
        self._write_status(DEPLOYMENT, deployment, {
            "observedGeneration": meta.get("generation", 1),
            "replicas": sum(s.get("replicas", 0) for s in current),
            "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready,
            "unavailableReplicas": max(0, replicas - ready),
            "conditions": [
                {"type": "Available", "status": "True" if available else "False",
                 "reason": "MinimumReplicasAvailable" if available
                 else "MinimumReplicasUnavailable",
                 "message": "Deployment has minimum availability." if available
                 else "Deployment does not have minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": f'ReplicaSet "{wanted}" has successfully progressed.'},
            ],
        })

    def _replicaset(self, rs: Object) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            return
        pods = [p for p in self._owned_pods(rs) if _is_active(p)]
        wanted = rs["spec"].get("replicas", 1)
        for _ in range(wanted - len(pods)):
            self._create_pod(rs, f"{rs['metadata']['name']}-{objects.random_suffix()}", {})
        if len(pods) > wanted:
            # Not-ready pods go first, then the youngest, as the ReplicaSet controller ranks.
            ranked = sorted(pods, key=lambda p: (_is_ready(p), p["metadata"]["creationTimestamp"],
                                                 p["metadata"]["name"]), reverse=False)
            doomed = [p for p in ranked if not _is_ready(p)]
            doomed += sorted((p for p in ranked if _is_ready(p)),
                             key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)
            for pod in doomed[: len(pods) - wanted]:
                objects.delete(self.store, POD, pod["metadata"]["namespace"],
                               pod["metadata"]["name"])
        pods = [p for p in self._owned_pods(rs) if _is_active(p)]
        ready = sum(1 for p in pods if _is_ready(p))
        self._write_status(REPLICASET, rs, {
            "replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
            "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1),
        })

    def _statefulset(self, sts: Object) -> None:
        name, wanted = sts["metadata"]["name"], sts["spec"].get("replicas", 1)
        revision = f"{name}-{template_hash(sts['spec']['template'])}"
        pods = {p["metadata"]["name"]: p for p in self._owned_pods(sts)}
        for ordinal in range(wanted):
            pod_name = f"{name}-{ordinal}"
            if pod_name not in pods:
                self._create_pod(sts, pod_name, {
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": str(ordinal)})
        for pod_name, pod in pods.items():
            if int(pod_name.rsplit("-", 1)[1]) >= wanted and _is_active(pod):
                objects.delete(self.store, POD, pod["metadata"]["namespace"], pod_name)
        active = [p for p in self._owned_pods(sts) if _is_active(p)]
        ready = sum(1 for p in active if _is_ready(p))
        self._write_status(STATEFULSET, sts, {
            "replicas": len(active), "readyReplicas": ready, "availableReplicas": ready,
            "currentReplicas": len(active), "updatedReplicas": len(active),
            "currentRevision": revision, "updateRevision": revision,
            "observedGeneration": sts["metadata"].get("generation", 1)})

    def _daemonset(self, ds: Object) -> None:
        pods = self._owned_pods(ds)
        covered = {p["spec"].get("nodeName") for p in pods if _is_active(p)}
        for node in self.nodes:
            if node not in covered:
                self._create_pod(ds, f"{ds['metadata']['name']}-{objects.random_suffix()}",
                                 {"controller-revision-hash": template_hash(
                                     ds["spec"]["template"])}, node=node)
        active = [p for p in self._owned_pods(ds) if _is_active(p)]
        ready = sum(1 for p in active if _is_ready(p))
        self._write_status(DAEMONSET, ds, {
            "desiredNumberScheduled": len(self.nodes), "currentNumberScheduled": len(active),
            "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": len(active),
            "numberMisscheduled": 0,
            "observedGeneration": ds["metadata"].get("generation", 1)})

    # -- jobs --------------------------------------------------------------------------------

    def _job(self, job: Object) -> None:
        meta, spec, status = job["metadata"], job["spec"], dict(job.get("status") or {})
        conditions = list(status.get("conditions") or [])
        finished = next((c for c in conditions if c["type"] in ("Complete", "Failed")
                         and c["status"] == "True"), None)
        if finished is not None:
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is not None and _seconds_since(finished["lastTransitionTime"]) >= ttl:
                objects.delete(self.store, JOB, meta["namespace"], meta["name"],
                               propagation="Background")
            return
        if meta.get("deletionTimestamp"):
            return
        pods = self._owned_pods(job)
        active = [p for p in pods if _is_active(p)]
        succeeded = [p for p in pods if p.get("status", {}).get("phase") == "Succeeded"]
        failed = [p for p in pods if p.get("status", {}).get("phase") == "Failed"]
        status.setdefault("startTime", now_rfc3339())
        stamp = now_rfc3339()
        outcome: tuple[str, str, str] | None = None
        if len(succeeded) >= spec.get("completions", 1):
            outcome = ("Complete", "Completed", "Reached expected number of succeeded pods")
        elif len(failed) > spec.get("backoffLimit", 6):
            outcome = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff "
                       "limit")
        elif spec.get("activeDeadlineSeconds") is not None and _seconds_since(
                status["startTime"]) >= spec["activeDeadlineSeconds"]:
            outcome = ("Failed", "DeadlineExceeded", "Job was active longer than specified "
                       "deadline")
        if outcome is None:
            missing = min(spec.get("parallelism", 1),
                          spec.get("completions", 1) - len(succeeded)) - len(active)
            for _ in range(max(0, missing)):
                created = self._create_pod(job, f"{meta['name']}-{objects.random_suffix()}", {})
                if created is not None:
                    active.append(created)
        else:
            kind, reason, message = outcome
            for pod in active:
                objects.delete(self.store, POD, pod["metadata"]["namespace"],
                               pod["metadata"]["name"])
            interim = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
            for condition_type in (interim, kind):
                conditions.append({"type": condition_type, "status": "True", "reason": reason,
                                   "message": message, "lastProbeTime": stamp,
                                   "lastTransitionTime": stamp})
            status["conditions"] = conditions
            if kind == "Complete":
                status["completionTime"] = stamp
            else:
                objects.record_event(self.store, job, "Warning", reason, message,
                                     "job-controller")
            active = []
        status.update({
            "active": len(active), "succeeded": len(succeeded), "failed": len(failed),
            "ready": sum(1 for p in active if _is_ready(p)), "terminating": 0,
            "uncountedTerminatedPods": {}})
        for key in ("active", "succeeded", "failed"):
            if not status[key]:
                del status[key]
        if status != job.get("status"):
            job["status"] = status
            self.store.update(JOB, job)

    def _cronjob(self, cronjob: Object) -> None:
        # Jobs are made when the simulator starts (no clock-driven schedule); the controller
        # keeps status.active pointing at the unfinished ones.
        uid = cronjob["metadata"]["uid"]
        owned = [j for j in self.store.list(JOB, cronjob["metadata"]["namespace"])
                 if any(r.get("uid") == uid for r in j["metadata"].get("ownerReferences") or [])]
        active = [{"kind": "Job", "namespace": j["metadata"]["namespace"],
                   "name": j["metadata"]["name"], "uid": j["metadata"]["uid"],
                   "apiVersion": "batch/v1", "resourceVersion": j["metadata"]["resourceVersion"]}
                  for j in owned if not any(c["type"] in ("Complete", "Failed")
                                            for c in j.get("status", {}).get("conditions") or [])]
        status: dict[str, Any] = {"active": active} if active else {}
        if owned:
            status["lastScheduleTime"] = max(j["metadata"]["creationTimestamp"] for j in owned)
        if {k: v for k, v in (cronjob.get("status") or {}).items() if k != "active"} != {
                k: v for k, v in status.items() if k != "active"} or [
                a["uid"] for a in (cronjob.get("status") or {}).get("active") or []] != [
                a["uid"] for a in active]:
            cronjob["status"] = status
            self.store.update(CRONJOB, cronjob)

    # -- garbage collector -------------------------------------------------------------------

    def _collect_garbage(self) -> None:
        everything = [(rt, obj) for rt in RESOURCES for obj in self.store.list(rt)]
        uids = {obj["metadata"]["uid"] for _, obj in everything}
        owners_with_dependents: set[str] = set()
        for rt, obj in everything:
            refs = obj["metadata"].get("ownerReferences") or []
            orphaned = refs and not any(r.get("uid") in uids for r in refs)
            if orphaned and not obj["metadata"].get("deletionTimestamp"):
                # An earlier cascade in this pass may have removed it already.
                with contextlib.suppress(ApiError):
                    objects.delete(self.store, rt, obj["metadata"].get("namespace"),
                                   obj["metadata"]["name"], propagation="Background")
            owners_with_dependents.update(r.get("uid") for r in refs)
        for rt, obj in everything:
            meta = obj["metadata"]
            if "foregroundDeletion" not in (meta.get("finalizers") or []):
                continue
            if meta["uid"] in owners_with_dependents:
                for dependent_rt, dependent in objects.dependents(self.store, meta["uid"]):
                    if not dependent["metadata"].get("deletionTimestamp"):
                        objects.delete(self.store, dependent_rt,
                                       dependent["metadata"].get("namespace"),
                                       dependent["metadata"]["name"], propagation="Foreground")
            else:
                self.store.remove(rt, meta.get("namespace"), meta["name"])
