"""The resource types the simulated API server serves, and its discovery documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """How error messages name the resource: ``pods``, ``jobs.batch``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "Namespace",
        "namespaces",
        False,
        ("ns",),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("status",),
    ),
    ResourceType("", "v1", "Node", "nodes", False, ("no",), subresources=("status",)),
    ResourceType(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        ("po",),
        subresources=("status", "ephemeralcontainers", "portforward", "log"),
    ),
    ResourceType("", "v1", "Service", "services", True, ("svc",), subresources=("status",)),
    ResourceType("", "v1", "Event", "events", True, ("ev",)),
    ResourceType("", "v1", "Secret", "secrets", True),
    ResourceType("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        True,
        ("deploy",),
        subresources=("status", "scale"),
    ),
    ResourceType(
        "apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), subresources=("status", "scale")
    ),
    ResourceType(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        True,
        ("sts",),
        subresources=("status", "scale"),
    ),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), subresources=("status",)),
    ResourceType("batch", "v1", "Job", "jobs", True, (), subresources=("status",)),
    ResourceType("batch", "v1", "CronJob", "cronjobs", True, ("cj",), subresources=("status",)),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        False,
        (),
        ("create",),
    ),
)

_BY_PATH = {(rt.group, rt.version, rt.plural): rt for rt in RESOURCES}
_BY_KIND = {rt.kind: rt for rt in RESOURCES}


def resource_for(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_PATH.get((group, version, plural))


def resource_of_kind(kind: str) -> ResourceType:
    return _BY_KIND[kind]


POD = resource_of_kind("Pod")
NAMESPACE = resource_of_kind("Namespace")
NODE = resource_of_kind("Node")
EVENT = resource_of_kind("Event")
SERVICE = resource_of_kind("Service")
DEPLOYMENT = resource_of_kind("Deployment")
REPLICASET = resource_of_kind("ReplicaSet")
STATEFULSET = resource_of_kind("StatefulSet")
DAEMONSET = resource_of_kind("DaemonSet")
JOB = resource_of_kind("Job")
CRONJOB = resource_of_kind("CronJob")
SECRET = resource_of_kind("Secret")
CONFIGMAP = resource_of_kind("ConfigMap")


def _groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rt in RESOURCES:
        if rt.group:
            versions = groups.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
    return groups


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def api_group_list() -> dict[str, Any]:
    groups = []
    for name, versions in _groups().items():
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        groups.append({"name": name, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(name: str) -> dict[str, Any] | None:
    for group in api_group_list()["groups"]:
        if group["name"] == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **group}
    return None


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    members = [rt for rt in RESOURCES if rt.group == group and rt.version == version]
    if not members:
        return None
    resources: list[dict[str, Any]] = []
    for rt in members:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        resources.append(entry)
        for sub in rt.subresources:
            kind = {"scale": "Scale", "portforward": "PodPortForwardOptions", "log": "Pod"}.get(
                sub, rt.kind
            )
            verbs = {"portforward": ["create", "get"], "log": ["get"]}.get(
                sub, ["get", "patch", "update"]
            )
            entry_sub: dict[str, Any] = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": kind,
                "verbs": verbs,
            }
            if sub == "scale":
                entry_sub["group"] = "autoscaling"
                entry_sub["version"] = "v1"
            resources.append(entry_sub)
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }
