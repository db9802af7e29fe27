"""The Kubernetes REST API over aiohttp: discovery, CRUD with selectors, watch streams,
subresources (status, scale, ephemeralcontainers, log, portforward) and SelfSubjectAccessReview,
with Status bodies for every error."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import traceback
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.kubesim import admission, objects, pod_endpoints, resources, tables
from tests.kubesim.cluster import Cluster
from tests.kubesim.errors import ApiError
from tests.kubesim.patching import apply_patch
from tests.kubesim.portforward import serve_port_forward
from tests.kubesim.resources import POD, ResourceType
from tests.kubesim.selectors import field_selector, label_selector, selector_to_string
from tests.kubesim.store import Object

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-kubesim",
    "gitCommit": "kubesim",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# How long a quiet watch that allows bookmarks waits before sending one.
BOOKMARK_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class RequestSeen:
    """One request as the API server handled it (monotonic seconds), so that tests can tell
    calls that overlapped from calls made one after another."""

    method: str
    path: str
    started: float
    ended: float


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=json.dumps)


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


class ApiServer:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.address = ""
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.requests: list[RequestSeen] = []
        """Every request handled but the watches and port-forwards still open, oldest first."""
        self.held: dict[str, float] = {}
        """``VERB:RESOURCE`` -> seconds such requests wait before they are handled."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        try:
            return await self._handle(request)
        finally:
            seen = RequestSeen(request.method, request.path, started, time.monotonic())
            self.requests.append(seen)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            # kubectl withholds bearer tokens on plain http, so a request without credentials
            # counts as the test user too; a wrong token is refused like a real cluster does.
            credentials = request.headers.get("Authorization")
            if credentials is not None and credentials != f"Bearer {self.cluster.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            return await self._route(request)
        except ApiError as error:
            return _json(error.status(), error.code)
        except (KeyError, TypeError, ValueError) as broken:
            # A malformed object in a request is the client's fault, as the API sees it.
            traceback.print_exc()
            return _json(
                ApiError.bad_request(f"kubesim could not handle the request: {broken!r}").status(),
                400,
            )

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/version"]})
        if parts == ["version"]:
            return _json(VERSION)
        if parts == ["api"]:
            return _json(resources.api_versions(self.address))
        if parts == ["apis"]:
            return _json(resources.api_group_list())
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 2:
            if len(parts) == 2:
                found = resources.api_group(parts[1])
                if found is None:
                    raise ApiError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                return _json(found)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            listing = resources.api_resource_list(group, version)
            if listing is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(listing)
        target = self._target(group, version, rest)
        return await self._dispatch(request, target)

    @staticmethod
    def _target(group: str, version: str, rest: list[str]) -> Target:
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        rt = resources.resource_for(group, version, rest[0])
        if rt is None or (namespace is not None and not rt.namespaced) or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and subresource not in rt.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Target(rt, namespace, name, subresource)

    @staticmethod
    def _verb(request: web.Request, target: Target) -> str:
        if target.subresource == "portforward":
            return "create"
        method = request.method
        if method == "GET":
            if target.name:
                return "get"
            return "watch" if _truthy(request.query.get("watch")) else "list"
        if method == "DELETE":
            return "delete" if target.name else "deletecollection"
        return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())

    async def _dispatch(self, request: web.Request, target: Target) -> web.StreamResponse:
        verb = self._verb(request, target)
        rt = target.rt
        self.cluster.rbac.check(
            admission.Request(
                verb,
                rt.group,
                rt.plural,
                target.subresource,
                target.namespace or "",
                target.name or "",
            )
        )
        held = self.held.get(f"{verb}:{rt.plural}")
        if held:
            await asyncio.sleep(held)
        if target.subresource == "portforward":
            return await serve_port_forward(
                request, self.cluster, target.namespace or "", target.name or ""
            )
        if target.subresource == "log":
            return await pod_endpoints.serve_log(
                request, self.cluster, target.namespace or "", target.name or ""
            )
        if verb == "list":
            listed = self._list(request, target)
            if tables.wants_table(request.headers.get("Accept", "")):
                return _json(tables.table(rt.plural, listed["items"], self.store.revision))
            return _json(listed)
        if verb == "watch":
            return await self._watch(request, target)
        if verb == "get":
            obj = self.store.require(rt, target.namespace, target.name or "")
            if not target.subresource and tables.wants_table(request.headers.get("Accept", "")):
                return _json(tables.table(rt.plural, [obj], self.store.revision))
            return _json(self._view(target, obj))
        if verb == "create":
            return await self._create(request, target)
        if verb in ("patch", "update"):
            return await self._modify(request, target, verb)
        if verb == "delete":
            return await self._delete(request, target)
        if verb == "deletecollection":
            return await self._delete_collection(request, target)
        raise ApiError(
            405,
            "MethodNotAllowed",
            f"the server does not allow this method on the requested resource ({request.method})",
        )

    # -- reads -------------------------------------------------------------------------------

    def _selected(self, request: web.Request, target: Target) -> list[Object]:
        labels = label_selector(request.query.get("labelSelector"))
        fields = field_selector(request.query.get("fieldSelector"))
        return [
            obj
            for obj in self.store.list(target.rt, target.namespace)
            if labels(obj["metadata"].get("labels") or {}) and fields(obj)
        ]

    def _list(self, request: web.Request, target: Target) -> Object:
        items = self._selected(request, target)
        for item in items:
            item.pop("apiVersion", None)
            item.pop("kind", None)
        metadata: dict[str, Any] = {"resourceVersion": str(self.store.revision)}
        # Paging: the continue token is the offset of the next page in the sorted listing.
        limit = int(request.query.get("limit") or 0)
        offset = int(request.query.get("continue") or 0)
        if limit > 0 or offset:
            page_end = offset + limit if limit > 0 else len(items)
            if page_end < len(items):
                metadata["continue"] = str(page_end)
                metadata["remainingItemCount"] = len(items) - page_end
            items = items[offset:page_end]
        return {
            "kind": f"{target.rt.kind}List",
            "apiVersion": target.rt.api_version,
            "metadata": metadata,
            "items": items,
        }

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        labels = label_selector(request.query.get("labelSelector"))
        fields = field_selector(request.query.get("fieldSelector"))
        raw_version = request.query.get("resourceVersion") or ""
        since = int(raw_version) if raw_version not in ("", "0") else None
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            watch = self.store.watch(
                target.rt,
                target.namespace,
                lambda obj: labels(obj["metadata"].get("labels") or {}) and fields(obj),
                since,
            )
        except ApiError as expired:
            # Like the API server, a compacted resourceVersion ends the stream with an ERROR
            # event carrying the 410 Status, not with an HTTP error.
            await response.prepare(request)
            line = json.dumps({"type": "ERROR", "object": expired.status()}) + "\n"
            await response.write(line.encode())
            await response.write_eof()
            return response
        await response.prepare(request)
        bookmarks = _truthy(request.query.get("allowWatchBookmarks"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while (remaining := deadline - loop.time()) > 0:
                try:
                    change = await asyncio.wait_for(
                        watch.queue.get(), min(remaining, BOOKMARK_SECONDS)
                    )
                except TimeoutError:
                    # Quiet for a while, or the watch's time is up: tell a client that asked
                    # for bookmarks how far it is, so that it resumes from there.
                    if bookmarks and watch.queue.empty():
                        await response.write(self._bookmark(target))
                    continue
                # Everything queued goes out in one write: while the simulated cluster starts
                # many pods a turn of its event loop can take most of a second, and one event
                # per turn (wait_for runs each get in a task of its own) left a watch many
                # seconds behind the cluster, which a real API server never is.
                changes = [change]
                while change is not None and not watch.queue.empty():
                    change = watch.queue.get_nowait()
                    changes.append(change)
                lines = "".join(
                    json.dumps({"type": c.type, "object": c.object}) + "\n"
                    for c in changes
                    if c is not None
                )
                if lines:
                    await response.write(lines.encode())
                if change is None:
                    break
        except ConnectionResetError:
            pass
        finally:
            self.store.unwatch(watch)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    def _bookmark(self, target: Target) -> bytes:
        marker = {
            "kind": target.rt.kind,
            "apiVersion": target.rt.api_version,
            "metadata": {"resourceVersion": str(self.store.revision)},
        }
        return (json.dumps({"type": "BOOKMARK", "object": marker}) + "\n").encode()

    def _view(self, target: Target, obj: Object) -> Object:
        if target.subresource == "scale":
            return self._scale_of(obj)
        return obj

    @staticmethod
    def _scale_of(obj: Object) -> Object:
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": selector_to_string(obj["spec"].get("selector") or {}),
            },
        }

    # -- writes ------------------------------------------------------------------------------

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as bad:
            raise ApiError.bad_request(
                f"the body of the request could not be decoded: {bad}"
            ) from bad

    async def _create(self, request: web.Request, target: Target) -> web.StreamResponse:
        body = await self._body(request)
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body of the request must be an object")
        rt = target.rt
        if rt.plural == "selfsubjectaccessreviews":
            return _json(self._access_review(body), 201)
        if target.subresource:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        meta = body.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") not in (None, "", target.namespace):
                raise ApiError.bad_request(
                    "the namespace of the provided object does not "
                    "match the namespace sent on the request"
                )
            meta["namespace"] = target.namespace
        dry_run = request.query.get("dryRun") == "All"
        return _json(objects.create(self.store, rt, body, dry_run=dry_run), 201)

    def _access_review(self, body: Object) -> Object:
        attributes = (body.get("spec") or {}).get("resourceAttributes") or {}
        allowed = self.cluster.rbac.allows(
            admission.Request(
                attributes.get("verb", ""),
                attributes.get("group", ""),
                attributes.get("resource", ""),
                attributes.get("subresource", ""),
                attributes.get("namespace", ""),
                attributes.get("name", ""),
            )
        )
        review = copy.deepcopy(body)
        review.update({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"})
        review.setdefault("metadata", {})["creationTimestamp"] = None
        review["status"] = {"allowed": allowed}
        if allowed:
            review["status"]["reason"] = "RBAC: allowed by the simulated cluster role"
        return review

    async def _modify(self, request: web.Request, target: Target, verb: str) -> web.Response:
        rt, name = target.rt, target.name or ""
        body = await self._body(request)
        current = self.store.require(rt, target.namespace, name)
        viewed = self._view(target, current)
        if verb == "patch":
            changed = apply_patch(viewed, request.headers.get("Content-Type", ""), body)
        else:
            if not isinstance(body, dict):
                raise ApiError.bad_request("the body of the request must be an object")
            version = (body.get("metadata") or {}).get("resourceVersion")
            if version and version != viewed["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on "
                    f'{rt.group_resource} "{name}": the object has been modified; '
                    f"please apply your changes to the latest version and try again",
                )
            changed = body
        updated = self._merge_subresource(target, current, changed)
        if rt is POD:
            pod_endpoints.check_pod_update(self.store, current, updated)
        if request.query.get("dryRun") == "All":
            return _json(self._view(target, updated))
        stored = self.store.update(rt, updated)
        return _json(self._view(target, stored))

    def _merge_subresource(self, target: Target, current: Object, changed: Object) -> Object:
        """Keep what the endpoint may not change: the main resource ignores status, status
        changes only status, scale only spec.replicas, ephemeralcontainers only those."""
        updated = copy.deepcopy(current)
        sub = target.subresource
        if sub == "status":
            updated["status"] = changed.get("status") or {}
        elif sub == "scale":
            replicas = (changed.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError.invalid(
                    target.rt.group_resource,
                    current["metadata"]["name"],
                    "Scale",
                    "spec.replicas: Invalid value: must be greater than or equal to 0",
                )
            updated["spec"]["replicas"] = replicas
        elif sub == "ephemeralcontainers":
            pod_endpoints.check_ephemeral_change(current, changed)
            updated["spec"]["ephemeralContainers"] = (changed.get("spec") or {}).get(
                "ephemeralContainers"
            ) or []
        else:
            meta = changed.get("metadata") or {}
            for key in ("labels", "annotations", "finalizers", "ownerReferences"):
                if key in meta:
                    updated["metadata"][key] = meta[key]
                else:
                    updated["metadata"].pop(key, None)
            updated["spec"] = changed.get("spec", current.get("spec"))
        return updated

    @staticmethod
    async def _delete_options(request: web.Request) -> tuple[str | None, int | None, bool]:
        raw = await request.read()
        options: dict[str, Any] = json.loads(raw) if raw.strip() else {}
        propagation = request.query.get("propagationPolicy") or options.get("propagationPolicy")
        if propagation is None and options.get("orphanDependents") is not None:
            propagation = "Orphan" if options["orphanDependents"] else "Background"
        raw_grace = request.query.get("gracePeriodSeconds")
        grace = int(raw_grace) if raw_grace is not None else options.get("gracePeriodSeconds")
        dry_run = request.query.get("dryRun") == "All" or options.get("dryRun") == ["All"]
        return propagation, grace, dry_run

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        propagation, grace, dry_run = await self._delete_options(request)
        name = target.name or ""
        result = objects.delete(
            self.store,
            target.rt,
            target.namespace,
            name,
            propagation=propagation,
            grace_seconds=grace,
            dry_run=dry_run,
        )
        # The API answers 202 only when a cascade was asked for with orphanDependents=false and
        # the object is still there; graceful pod deletion is a 200 with the terminating pod.
        still_there = self.store.get(target.rt, target.namespace, name) is not None
        accepted = still_there and not dry_run and await self._orphan_dependents_false(request)
        return _json(result, 202 if accepted else 200)

    @staticmethod
    async def _orphan_dependents_false(request: web.Request) -> bool:
        raw = await request.read()
        options = json.loads(raw) if raw.strip() else {}
        return request.query.get("orphanDependents") == "false" or (
            options.get("orphanDependents") is False
        )

    async def _delete_collection(self, request: web.Request, target: Target) -> web.Response:
        propagation, grace, dry_run = await self._delete_options(request)
        deleted = []
        for obj in self._selected(request, target):
            deleted.append(
                objects.delete(
                    self.store,
                    target.rt,
                    obj["metadata"].get("namespace"),
                    obj["metadata"]["name"],
                    propagation=propagation,
                    grace_seconds=grace,
                    dry_run=dry_run,
                )
            )
        return _json(
            {
                "kind": f"{target.rt.kind}List",
                "apiVersion": target.rt.api_version,
                "metadata": {"resourceVersion": str(self.store.revision)},
                "items": deleted,
            }
        )
