"""The Job controller (completions, backoff limit, active deadline, TTL after finishing)
and the CronJob status keeper."""

from __future__ import annotations

from typing import Any

from tests.kubesim import objects
from tests.kubesim.controllers.common import (
    create_pod,
    is_active,
    is_ready,
    owned_pods,
    seconds_since,
)
from tests.kubesim.resources import CRONJOB, JOB, POD
from tests.kubesim.store import Object, Store, now_rfc3339


def reconcile_job(store: Store, job: Object) -> None:
    meta, spec, status = job["metadata"], job["spec"], dict(job.get("status") or {})
    conditions = list(status.get("conditions") or [])
    finished = next(
        (c for c in conditions if c["type"] in ("Complete", "Failed") and c["status"] == "True"),
        None,
    )
    if finished is not None:
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is not None and seconds_since(finished["lastTransitionTime"]) >= ttl:
            objects.delete(store, JOB, meta["namespace"], meta["name"], propagation="Background")
        return
    if meta.get("deletionTimestamp"):
        return
    pods = owned_pods(store, job)
    active = [p for p in pods if is_active(p)]
    succeeded = [p for p in pods if p.get("status", {}).get("phase") == "Succeeded"]
    failed = [p for p in pods if p.get("status", {}).get("phase") == "Failed"]
    status.setdefault("startTime", now_rfc3339())
    stamp = now_rfc3339()
    outcome: tuple[str, str, str] | None = None
    if len(succeeded) >= spec.get("completions", 1):
        outcome = ("Complete", "Completed", "Reached expected number of succeeded pods")
    elif len(failed) > spec.get("backoffLimit", 6):
        outcome = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    elif (
        spec.get("activeDeadlineSeconds") is not None
        and seconds_since(status["startTime"]) >= spec["activeDeadlineSeconds"]
    ):
        outcome = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
    if outcome is None:
        missing = min(
            spec.get("parallelism", 1), spec.get("completions", 1) - len(succeeded)
        ) - len(active)
        for _ in range(max(0, missing)):
            created = create_pod(store, job, f"{meta['name']}-{objects.random_suffix()}", {})
            if created is not None:
                active.append(created)
    else:
        kind, reason, message = outcome
        for pod in active:
            objects.delete(store, POD, pod["metadata"]["namespace"], pod["metadata"]["name"])
        interim = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
        for condition_type in (interim, kind):
            conditions.append(
                {
                    "type": condition_type,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": stamp,
                    "lastTransitionTime": stamp,
                }
            )
        status["conditions"] = conditions
        if kind == "Complete":
            status["completionTime"] = stamp
        else:
            objects.record_event(store, job, "Warning", reason, message, "job-controller")
        active = []
    status.update(
        {
            "active": len(active),
            "succeeded": len(succeeded),
            "failed": len(failed),
            "ready": sum(1 for p in active if is_ready(p)),
            "terminating": 0,
            "uncountedTerminatedPods": {},
        }
    )
    for key in ("active", "succeeded", "failed"):
        if not status[key]:
            del status[key]
    if status != job.get("status"):
        job["status"] = status
        store.update(JOB, job)


def reconcile_cronjob(store: Store, cronjob: Object) -> None:
    # Jobs are made when the simulator starts (no clock-driven schedule); the controller
    # keeps status.active pointing at the unfinished ones.
    uid = cronjob["metadata"]["uid"]
    owned = [
        j
        for j in store.list(JOB, cronjob["metadata"]["namespace"])
        if any(r.get("uid") == uid for r in j["metadata"].get("ownerReferences") or [])
    ]
    active = [
        {
            "kind": "Job",
            "namespace": j["metadata"]["namespace"],
            "name": j["metadata"]["name"],
            "uid": j["metadata"]["uid"],
            "apiVersion": "batch/v1",
            "resourceVersion": j["metadata"]["resourceVersion"],
        }
        for j in owned
        if not any(
            c["type"] in ("Complete", "Failed") for c in j.get("status", {}).get("conditions") or []
        )
    ]
    status: dict[str, Any] = {"active": active} if active else {}
    if owned:
        status["lastScheduleTime"] = max(j["metadata"]["creationTimestamp"] for j in owned)
    if {k: v for k, v in (cronjob.get("status") or {}).items() if k != "active"} != {
        k: v for k, v in status.items() if k != "active"
    } or [a["uid"] for a in (cronjob.get("status") or {}).get("active") or []] != [
        a["uid"] for a in active
    ]:
        cronjob["status"] = status
        store.update(CRONJOB, cronjob)
