"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for, with the
columns kubectl users know for the kinds the simulator serves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.kubesim.store import Object

Column = tuple[str, int, Callable[[Object], Any]]  # name, priority (1: -o wide), cell


def age(obj: Object) -> str:
    created = datetime.strptime(obj["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    seconds = int((datetime.now(UTC) - created.replace(tzinfo=UTC)).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 600:
        return f"{seconds // 60}m{seconds % 60}s" if seconds % 60 else f"{seconds // 60}m"
    if seconds < 3 * 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _status(obj: Object) -> dict[str, Any]:
    return obj.get("status") or {}


def _pod_status(pod: Object) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for container in _status(pod).get("containerStatuses") or []:
        state = container.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason") not in (None, "ContainerCreating"):
            return str(state["waiting"]["reason"])
        if "terminated" in state:
            return str(state["terminated"].get("reason") or "Error")
    if _status(pod).get("phase") == "Pending" and _status(pod).get("podIP"):
        return "ContainerCreating"
    return str(_status(pod).get("phase") or "Pending")


def _pod_ready(pod: Object) -> str:
    statuses = _status(pod).get("containerStatuses") or []
    total = len(pod["spec"].get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _job_status(job: Object) -> str:
    for condition in _status(job).get("conditions") or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return str(condition["type"])
    return "Running"


def _ports(service: Object) -> str:
    return (
        ",".join(
            f"{p['port']}/{p.get('protocol', 'TCP')}" for p in service["spec"].get("ports") or []
        )
        or "<none>"
    )


def _name(obj: Object) -> str:
    return str(obj["metadata"]["name"])


COLUMNS: dict[str, list[Column]] = {
    "pods": [
        ("Name", 0, _name),
        ("Ready", 0, _pod_ready),
        ("Status", 0, _pod_status),
        (
            "Restarts",
            0,
            lambda p: sum(
                s.get("restartCount", 0) for s in _status(p).get("containerStatuses") or []
            ),
        ),
        ("Age", 0, age),
        ("IP", 1, lambda p: _status(p).get("podIP") or "<none>"),
        ("Node", 1, lambda p: p["spec"].get("nodeName") or "<none>"),
    ],
    "deployments": [
        ("Name", 0, _name),
        (
            "Ready",
            0,
            lambda d: f"{_status(d).get('readyReplicas', 0)}/{d['spec'].get('replicas', 1)}",
        ),
        ("Up-to-date", 0, lambda d: _status(d).get("updatedReplicas", 0)),
        ("Available", 0, lambda d: _status(d).get("availableReplicas", 0)),
        ("Age", 0, age),
    ],
    "replicasets": [
        ("Name", 0, _name),
        ("Desired", 0, lambda r: r["spec"].get("replicas", 1)),
        ("Current", 0, lambda r: _status(r).get("replicas", 0)),
        ("Ready", 0, lambda r: _status(r).get("readyReplicas", 0)),
        ("Age", 0, age),
    ],
    "statefulsets": [
        ("Name", 0, _name),
        (
            "Ready",
            0,
            lambda s: f"{_status(s).get('readyReplicas', 0)}/{s['spec'].get('replicas', 1)}",
        ),
        ("Age", 0, age),
    ],
    "daemonsets": [
        ("Name", 0, _name),
        ("Desired", 0, lambda d: _status(d).get("desiredNumberScheduled", 0)),
        ("Current", 0, lambda d: _status(d).get("currentNumberScheduled", 0)),
        ("Ready", 0, lambda d: _status(d).get("numberReady", 0)),
        ("Age", 0, age),
    ],
    "jobs": [
        ("Name", 0, _name),
        ("Status", 0, _job_status),
        (
            "Completions",
            0,
            lambda j: f"{_status(j).get('succeeded', 0)}/{j['spec'].get('completions', 1)}",
        ),
        ("Age", 0, age),
    ],
    "cronjobs": [
        ("Name", 0, _name),
        ("Schedule", 0, lambda c: c["spec"].get("schedule", "")),
        ("Suspend", 0, lambda c: str(c["spec"].get("suspend", False))),
        ("Active", 0, lambda c: len(_status(c).get("active") or [])),
        ("Age", 0, age),
    ],
    "services": [
        ("Name", 0, _name),
        ("Type", 0, lambda s: s["spec"].get("type", "ClusterIP")),
        ("Cluster-IP", 0, lambda s: s["spec"].get("clusterIP", "<none>")),
        ("Port(s)", 0, _ports),
        ("Age", 0, age),
    ],
    "nodes": [
        ("Name", 0, _name),
        ("Status", 0, lambda n: "Ready"),
        ("Roles", 0, lambda n: "worker"),
        ("Age", 0, age),
        ("Version", 0, lambda n: _status(n).get("nodeInfo", {}).get("kubeletVersion", "")),
    ],
    "namespaces": [
        ("Name", 0, _name),
        ("Status", 0, lambda n: _status(n).get("phase", "Active")),
        ("Age", 0, age),
    ],
    "events": [
        ("Type", 0, lambda e: e.get("type", "")),
        ("Reason", 0, lambda e: e.get("reason", "")),
        (
            "Object",
            0,
            lambda e: (
                f"{e['involvedObject'].get('kind', '').lower()}/"
                f"{e['involvedObject'].get('name', '')}"
            ),
        ),
        ("Message", 0, lambda e: e.get("message", "")),
    ],
}
DEFAULT_COLUMNS: list[Column] = [("Name", 0, _name), ("Age", 0, age)]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def table(plural: str, items: list[Object], resource_version: int) -> Object:
    columns = COLUMNS.get(plural, DEFAULT_COLUMNS)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": [
            {
                "name": name,
                "type": "string",
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": priority,
            }
            for name, priority, _ in columns
        ],
        "rows": [
            {
                "cells": [cell(item) for _, _, cell in columns],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item["metadata"],
                },
            }
            for item in items
        ],
    }
