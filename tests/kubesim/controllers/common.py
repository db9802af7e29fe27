"""What the controllers share: owner references, template hashes, pod readiness, and
creating pods from a template through admission."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from tests.kubesim import objects
from tests.kubesim.errors import ApiError
from tests.kubesim.resources import POD, ResourceType
from tests.kubesim.store import Object, Store


def seconds_since(stamp: str) -> float:
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds()


def owner_reference(owner: Object) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def template_hash(template: Any) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:10])


def is_active(pod: Object) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and pod.get("status", {}).get(
        "phase"
    ) not in ("Succeeded", "Failed")


def is_ready(pod: Object) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def owned_pods(store: Store, owner: Object) -> list[Object]:
    uid = owner["metadata"]["uid"]
    return store.list(
        POD,
        owner["metadata"]["namespace"],
        where=lambda pod: any(
            r.get("uid") == uid and r.get("controller")
            for r in pod["metadata"].get("ownerReferences") or []
        ),
    )


def create_pod(
    store: Store, owner: Object, name: str, extra_labels: dict[str, str], node: str | None = None
) -> Object | None:
    template = copy.deepcopy(owner["spec"]["template"])
    meta = template.get("metadata") or {}
    pod: Object = {
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": {**(meta.get("labels") or {}), **extra_labels},
            "annotations": dict(meta.get("annotations") or {}),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": template.get("spec") or {},
    }
    if node:
        pod["spec"]["nodeName"] = node
    try:
        return objects.create(store, POD, pod)
    except ApiError as refused:
        kind = owner["kind"]
        objects.record_event(
            store,
            owner,
            "Warning",
            "FailedCreate",
            f"Error creating: {refused.message}",
            f"{kind.lower()}-controller",
        )
        return None


def write_status(store: Store, rt: ResourceType, obj: Object, status: dict[str, Any]) -> None:
    merged = {**(obj.get("status") or {}), **status}
    if merged != obj.get("status"):
        obj["status"] = merged
        store.update(rt, obj)
