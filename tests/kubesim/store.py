"""The object store: every object by resource, namespace and name, one resourceVersion counter
for all of them (as etcd's revision), and the fan-out of changes to watches and controllers."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.kubesim.errors import ApiError
from tests.kubesim.resources import ResourceType

Object = dict[str, Any]

# How far back a watch may resume; older resourceVersions get 410 Gone, as after compaction.
HISTORY_LENGTH = 5000


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Change:
    type: str  # ADDED, MODIFIED, DELETED
    resource: ResourceType
    object: Object
    resource_version: int
    previous: Object | None = None  # the object before a MODIFIED change

    def seen_through(self, accepts: Callable[[Object], bool]) -> Change | None:
        """This change as a watch with a filter sees it: an object that starts matching is
        ADDED, one that stops matching is DELETED, as the API server's filtered watches do."""
        now = accepts(self.object)
        if self.type != "MODIFIED" or self.previous is None:
            return self if now else None
        before = accepts(self.previous)
        if now and before:
            return self
        if now:
            return Change("ADDED", self.resource, self.object, self.resource_version)
        if before:
            return Change("DELETED", self.resource, self.object, self.resource_version)
        return None


@dataclass(eq=False)
class Watch:
    resource: ResourceType
    namespace: str | None
    accepts: Callable[[Object], bool]
    queue: asyncio.Queue[Change | None] = field(default_factory=asyncio.Queue)


class Store:
    def __init__(self) -> None:
        self._objects: dict[tuple[str, str, str], Object] = {}
        self._revision = 0
        self._history: deque[Change] = deque(maxlen=HISTORY_LENGTH)
        self._watches: set[Watch] = set()
        self._listeners: list[Callable[[Change], None]] = []
        self._compacted = 0

    @property
    def revision(self) -> int:
        return self._revision

    def listen(self, listener: Callable[[Change], None]) -> None:
        """Call ``listener`` on every change (controllers use this to wake up)."""
        self._listeners.append(listener)

    @staticmethod
    def _key(rt: ResourceType, namespace: str | None, name: str) -> tuple[str, str, str]:
        return (rt.group_resource, namespace or "", name)

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Object | None:
        found = self._objects.get(self._key(rt, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def require(self, rt: ResourceType, namespace: str | None, name: str) -> Object:
        found = self.get(rt, namespace, name)
        if found is None:
            raise ApiError.not_found(rt.group_resource, name, rt.group, rt.plural)
        return found

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        where: Callable[[Object], bool] | None = None,
    ) -> list[Object]:
        """Copies of the objects of a type; ``where`` looks at the stored objects (without
        changing them) so that only those it keeps are copied: the controllers ask for a
        few owned pods among hundreds on every reconcile."""
        return [
            copy.deepcopy(obj)
            for (group_resource, ns, _), obj in sorted(self._objects.items())
            if group_resource == rt.group_resource
            and (namespace is None or ns == namespace)
            and (where is None or where(obj))
        ]

    def _publish(
        self, change_type: str, rt: ResourceType, obj: Object, previous: Object | None = None
    ) -> None:
        change = Change(change_type, rt, copy.deepcopy(obj), self._revision, previous)
        self._history.append(change)
        for watch in list(self._watches):
            if watch.resource == rt and (
                watch.namespace is None or watch.namespace == obj["metadata"].get("namespace")
            ):
                seen = change.seen_through(watch.accepts)
                if seen is not None:
                    watch.queue.put_nowait(seen)
        for listener in self._listeners:
            listener(change)

    def create(self, rt: ResourceType, obj: Object) -> Object:
        meta = obj.setdefault("metadata", {})
        namespace = meta.get("namespace") if rt.namespaced else None
        key = self._key(rt, namespace, meta["name"])
        if key in self._objects:
            raise ApiError.already_exists(rt.group_resource, meta["name"], rt.group, rt.plural)
        self._revision += 1
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())
        meta["resourceVersion"] = str(self._revision)
        meta["creationTimestamp"] = now_rfc3339()
        meta.setdefault("generation", 1)
        self._objects[key] = copy.deepcopy(obj)
        self._publish("ADDED", rt, obj)
        return copy.deepcopy(obj)

    def update(self, rt: ResourceType, obj: Object) -> Object:
        """Store a new version. The spec changing bumps metadata.generation, like the API."""
        meta = obj["metadata"]
        key = self._key(rt, meta.get("namespace") if rt.namespaced else None, meta["name"])
        current = self._objects.get(key)
        if current is None:
            raise ApiError.not_found(rt.group_resource, meta["name"], rt.group, rt.plural)
        if current == obj:
            return copy.deepcopy(obj)
        self._revision += 1
        meta["uid"] = current["metadata"]["uid"]
        meta["creationTimestamp"] = current["metadata"]["creationTimestamp"]
        meta["resourceVersion"] = str(self._revision)
        generation = current["metadata"].get("generation", 1)
        if json.dumps(current.get("spec"), sort_keys=True) != json.dumps(
            obj.get("spec"), sort_keys=True
        ):
            generation += 1
        meta["generation"] = generation
        self._objects[key] = copy.deepcopy(obj)
        self._publish("MODIFIED", rt, obj, current)
        return copy.deepcopy(obj)

    def remove(self, rt: ResourceType, namespace: str | None, name: str) -> Object | None:
        obj = self._objects.pop(self._key(rt, namespace, name), None)
        if obj is None:
            return None
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        self._publish("DELETED", rt, obj)
        return copy.deepcopy(obj)

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        accepts: Callable[[Object], bool],
        since: int | None,
    ) -> Watch:
        """Open a watch. ``since=None`` starts with an ADDED event per existing object; a
        resourceVersion replays the changes after it, or raises 410 when it is too old."""
        watch = Watch(rt, namespace, accepts)
        if since is None:
            for obj in self.list(rt, namespace):
                if accepts(obj):
                    watch.queue.put_nowait(Change("ADDED", rt, obj, self._revision))
        else:
            oldest = self._compacted
            if len(self._history) == self._history.maxlen:
                oldest = max(oldest, self._history[0].resource_version - 1)
            if since < oldest:
                raise ApiError(410, "Expired", f"too old resource version: {since} ({oldest})")
            for change in self._history:
                if (
                    change.resource_version > since
                    and change.resource == rt
                    and (
                        namespace is None or change.object["metadata"].get("namespace") == namespace
                    )
                ):
                    seen = change.seen_through(accepts)
                    if seen is not None:
                        watch.queue.put_nowait(seen)
        self._watches.add(watch)
        return watch

    def compact(self) -> None:
        """Forget the change history, as etcd compaction does: watches from an older
        resourceVersion now get 410 Gone."""
        self._history.clear()
        self._compacted = self._revision

    def unwatch(self, watch: Watch) -> None:
        self._watches.discard(watch)

    def close_watches(self) -> None:
        for watch in self._watches:
            watch.queue.put_nowait(None)
        self._watches.clear()
