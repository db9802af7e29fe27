"""The pod endpoints with rules of their own: logs, spec updates, ephemeral containers."""

from __future__ import annotations

import asyncio
import contextlib
import copy

from aiohttp import web

from tests.kubesim import admission, objects
from tests.kubesim.cluster import Cluster
from tests.kubesim.errors import ApiError
from tests.kubesim.resources import POD
from tests.kubesim.store import Object, Store


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


async def serve_log(
    request: web.Request, cluster: Cluster, namespace: str, name: str
) -> web.StreamResponse:
    """pods/log: the container's output so far, or followed until it exits."""
    pod = cluster.store.require(POD, namespace, name)
    names = [c["name"] for c in pod["spec"]["containers"]] + [
        c["name"] for c in pod["spec"].get("ephemeralContainers") or []
    ]
    container = request.query.get("container")
    if container is None:
        if len(pod["spec"]["containers"]) != 1:
            raise ApiError.bad_request(
                f"a container name must be specified for pod {pod['metadata']['name']}, "
                f"choose one of: [{' '.join(names)}]"
            )
        container = names[0]
    if container not in names:
        raise ApiError.bad_request(
            f"container {container} is not valid for pod {pod['metadata']['name']}"
        )
    statuses = [
        *(pod["status"].get("containerStatuses") or []),
        *(pod["status"].get("ephemeralContainerStatuses") or []),
    ]
    state = next((s.get("state") or {} for s in statuses if s["name"] == container), {})
    waiting = state.get("waiting")
    if not state or (waiting and not cluster.kubelet.container_log(pod, container)):
        reason = (waiting or {}).get("reason", "ContainerCreating")
        if reason in ("ErrImagePull", "ImagePullBackOff"):
            reason = "trying and failing to pull image"
        raise ApiError.bad_request(
            f'container "{container}" in pod '
            f'"{pod["metadata"]["name"]}" is waiting to start: '
            f"{reason}"
        )
    text = cluster.kubelet.container_log(pod, container)
    tail = request.query.get("tailLines")
    if tail is not None:
        text = b"".join(text.splitlines(keepends=True)[-int(tail) :]) if int(tail) else b""
    if not _truthy(request.query.get("follow")):
        return web.Response(body=text, content_type="text/plain")
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(text)
    sent = len(cluster.kubelet.container_log(pod, container)) if tail else len(text)
    # Follow until the container's process is gone, like kubectl logs -f.
    with contextlib.suppress(ConnectionResetError):
        while cluster.kubelet.is_running(pod, container):
            await asyncio.sleep(0.2)
            current = cluster.kubelet.container_log(pod, container)
            if len(current) > sent:
                await response.write(current[sent:])
                sent = len(current)
        current = cluster.kubelet.container_log(pod, container)
        await response.write(current[sent:])
        await response.write_eof()
    return response


def check_ephemeral_change(current: Object, changed: Object) -> None:
    """Ephemeral containers can be added, never changed or removed, and have no ports."""
    name = current["metadata"]["name"]
    before = {c["name"]: c for c in current["spec"].get("ephemeralContainers") or []}
    after = {c["name"]: c for c in (changed.get("spec") or {}).get("ephemeralContainers") or []}
    regular = {c["name"] for c in current["spec"]["containers"]}
    for existing, spec in before.items():
        if after.get(existing) != spec:
            raise ApiError.invalid(
                "pods",
                name,
                "Pod",
                f"spec.ephemeralContainers: Forbidden: existing ephemeral "
                f'containers "{existing}" may not be removed or changed',
            )
    for index, (added, spec) in enumerate(after.items()):
        if added in regular:
            raise ApiError.invalid(
                "pods",
                name,
                "Pod",
                f'spec.ephemeralContainers[{index}].name: Duplicate value: "{added}"',
            )
        if spec.get("ports") or spec.get("resources", {}).get("limits"):
            raise ApiError.invalid(
                "pods",
                name,
                "Pod",
                f"spec.ephemeralContainers[{index}]: Forbidden: ports and "
                f"resources are not allowed for ephemeral containers",
            )
        if not spec.get("image"):
            raise ApiError.invalid(
                "pods", name, "Pod", f"spec.ephemeralContainers[{index}].image: Required value"
            )


def check_pod_update(store: Store, current: Object, updated: Object) -> None:
    """Pod specs are immutable but for images and a few fields; new ephemeral containers go
    through Pod Security admission like new pods."""

    def comparable(spec: Object) -> Object:
        spec = copy.deepcopy(spec)
        for container in spec.get("containers") or []:
            container.pop("image", None)
        spec.pop("ephemeralContainers", None)
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("tolerations", None)
        return spec

    name = current["metadata"]["name"]
    if comparable(current["spec"]) != comparable(updated["spec"]):
        raise ApiError.invalid(
            "pods",
            name,
            "Pod",
            "spec: Forbidden: pod updates may not "
            "change fields other than `spec.containers[*].image`, "
            "`spec.activeDeadlineSeconds`, `spec.tolerations` (only "
            "additions to existing tolerations)",
        )
    if updated["spec"].get("ephemeralContainers") != current["spec"].get("ephemeralContainers"):
        admission.check_pod_security(
            objects.namespace_labels(store, current["metadata"]["namespace"]), updated
        )
