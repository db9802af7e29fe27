"""What podtap reads from a pod (API JSON shape, camelCase keys): readiness, container, ports.

Pure functions over plain dicts, so that the rules are tested without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.errors import UserError

Pod = dict[str, Any]

MESH_CONTAINERS = frozenset(
    {
        "istio-proxy",
        "istio-init",
        "linkerd-proxy",
        "linkerd-init",
        "envoy",
        "envoy-sidecar",
        "consul-dataplane",
        "consul-connect-envoy-sidecar",
        "kuma-sidecar",
        "cilium-envoy",
        "vault-agent",
        "cloud-sql-proxy",
        "cloudsql-proxy",
        "datadog-agent",
        "fluent-bit",
        "fluentd",
        "oauth2-proxy",
    }
)
"""Sidecars that are almost never the service a person wants to tap."""

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def pod_name(pod: Pod) -> str:
    return str(pod["metadata"]["name"])


def pod_namespace(pod: Pod) -> str:
    return str(pod["metadata"].get("namespace", ""))


def source_name(pod: Pod) -> str:
    """How a tapped pod is named in every update: ``NAMESPACE/POD``."""
    return f"{pod_namespace(pod)}/{pod_name(pod)}"


def is_ready(pod: Pod) -> bool:
    """Running, not being deleted, and its Ready condition true (what a Service would route to)."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def container_names(pod: Pod) -> list[str]:
    return [str(c["name"]) for c in pod["spec"].get("containers") or []]


@dataclass(frozen=True, slots=True)
class ContainerChoice:
    name: str
    guessed: bool
    """True when podtap picked it by the sidecar rule, which the user should be told."""


def choose_container(pod: Pod, wanted: str | None) -> ContainerChoice:
    """The container to tap: the one named, else the pod's default-container annotation, else
    the first one that is not a known mesh or logging sidecar."""
    names = container_names(pod)
    if wanted is not None:
        if wanted not in names:
            raise UserError(
                f"Pod {pod_name(pod)} has no container {wanted!r}; "
                f"its containers are: {', '.join(names)}."
            )
        return ContainerChoice(wanted, guessed=False)
    annotated = (pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    if annotated in names:
        return ContainerChoice(str(annotated), guessed=False)
    if len(names) == 1:
        return ContainerChoice(names[0], guessed=False)
    for name in names:
        if name not in MESH_CONTAINERS:
            return ContainerChoice(name, guessed=True)
    return ContainerChoice(names[0], guessed=True)


def container_ports(pod: Pod, container: str) -> list[int]:
    """The TCP containerPorts the container declares, in order, without repeats."""
    ports: list[int] = []
    for spec in pod["spec"].get("containers") or []:
        if spec["name"] != container:
            continue
        for port in spec.get("ports") or []:
            number = int(port["containerPort"])
            if port.get("protocol", "TCP") == "TCP" and number not in ports:
                ports.append(number)
    return ports


def container_id(pod: Pod, container: str) -> str | None:
    """The runtime id from the pod status (``containerd://<hex>``), once the container started."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container and status.get("containerID"):
            return str(status["containerID"])
    return None


def node_name(pod: Pod) -> str | None:
    node = pod["spec"].get("nodeName")
    return str(node) if node else None
