"""The garbage collector: dependents whose owners are gone are deleted, and owners being
deleted in the foreground go once their dependents have."""

from __future__ import annotations

import contextlib

from tests.kubesim import objects
from tests.kubesim.errors import ApiError
from tests.kubesim.resources import RESOURCES
from tests.kubesim.store import Store


def collect_garbage(store: Store) -> None:
    everything = [(rt, obj) for rt in RESOURCES for obj in store.list(rt)]
    uids = {obj["metadata"]["uid"] for _, obj in everything}
    owners_with_dependents: set[str] = set()
    for rt, obj in everything:
        refs = obj["metadata"].get("ownerReferences") or []
        orphaned = refs and not any(r.get("uid") in uids for r in refs)
        if orphaned and not obj["metadata"].get("deletionTimestamp"):
            # An earlier cascade in this pass may have removed it already.
            with contextlib.suppress(ApiError):
                objects.delete(
                    store,
                    rt,
                    obj["metadata"].get("namespace"),
                    obj["metadata"]["name"],
                    propagation="Background",
                )
        owners_with_dependents.update(r.get("uid") for r in refs)
    for rt, obj in everything:
        meta = obj["metadata"]
        if "foregroundDeletion" not in (meta.get("finalizers") or []):
            continue
        if meta["uid"] in owners_with_dependents:
            for dependent_rt, dependent in objects.dependents(store, meta["uid"]):
                if not dependent["metadata"].get("deletionTimestamp"):
                    objects.delete(
                        store,
                        dependent_rt,
                        dependent["metadata"].get("namespace"),
                        dependent["metadata"]["name"],
                        propagation="Foreground",
                    )
        else:
            store.remove(rt, meta.get("namespace"), meta["name"])
