"""The objects a simulated cluster starts with: namespaces, nodes and the workloads asked for."""

from __future__ import annotations

from typing import Any

from tests.kubesim import objects
from tests.kubesim.admission import ENFORCE_LABEL
from tests.kubesim.config import SimConfig, Workload
from tests.kubesim.controllers import owner_reference
from tests.kubesim.resources import (
    CRONJOB,
    DAEMONSET,
    DEPLOYMENT,
    JOB,
    NAMESPACE,
    NODE,
    POD,
    SERVICE,
    STATEFULSET,
)
from tests.kubesim.store import Object, Store

SIDECAR_IMAGE = "docker.io/istio/proxyv2:1.22.0"


def workload_image(name: str) -> str:
    return f"registry.kubesim.local/{name}:1.0"


def node_names(count: int) -> list[str]:
    return [f"node-{index}" for index in range(1, count + 1)]


def pod_template(workload: Workload, sidecar: str | None) -> Object:
    containers: list[dict[str, Any]] = [
        {
            "name": workload.name,
            "image": workload_image(workload.name),
            "ports": [{"name": "http", "containerPort": workload.port, "protocol": "TCP"}],
        }
    ]
    if sidecar:
        containers.insert(0, {"name": sidecar, "image": SIDECAR_IMAGE})
    return {
        "metadata": {"labels": {"app": workload.name}},
        "spec": {"containers": containers, "terminationGracePeriodSeconds": 5},
    }


def _meta(workload: Workload) -> Object:
    return {
        "name": workload.name,
        "namespace": workload.namespace,
        "labels": {"app": workload.name},
    }


def _selector(workload: Workload) -> Object:
    return {"matchLabels": {"app": workload.name}}


def seed(store: Store, config: SimConfig) -> None:
    namespaces = {"default", "kube-system", "kube-public", "other", *config.namespaces}
    for group in (
        config.deployments,
        config.statefulsets,
        config.daemonsets,
        config.jobs,
        config.cronjobs,
        config.pods,
    ):
        namespaces.update(w.namespace for w in group)
    namespaces.update(ns for ns, _ in config.services)
    namespaces.update(config.pod_security)
    for namespace in sorted(namespaces):
        labels = {}
        if namespace in config.pod_security:
            labels[ENFORCE_LABEL] = config.pod_security[namespace]
        objects.create(store, NAMESPACE, {"metadata": {"name": namespace, "labels": labels}})
    for node in node_names(config.nodes):
        store.create(NODE, _node(node))
    side = config.sidecar
    for w in config.deployments:
        objects.create(
            store,
            DEPLOYMENT,
            {
                "metadata": _meta(w),
                "spec": {
                    "replicas": w.replicas,
                    "selector": _selector(w),
                    "template": pod_template(w, side),
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                    },
                    "revisionHistoryLimit": 10,
                    "progressDeadlineSeconds": 600,
                },
            },
        )
    for w in config.statefulsets:
        objects.create(
            store,
            STATEFULSET,
            {
                "metadata": _meta(w),
                "spec": {
                    "replicas": w.replicas,
                    "selector": _selector(w),
                    "serviceName": w.name,
                    "template": pod_template(w, side),
                    "podManagementPolicy": "Parallel",
                },
            },
        )
    for w in config.daemonsets:
        objects.create(
            store,
            DAEMONSET,
            {
                "metadata": _meta(w),
                "spec": {"selector": _selector(w), "template": pod_template(w, side)},
            },
        )
    for w in config.jobs:
        objects.create(store, JOB, {"metadata": _meta(w), "spec": _job_spec(w, side)})
    for w in config.cronjobs:
        cronjob = objects.create(
            store,
            CRONJOB,
            {
                "metadata": _meta(w),
                "spec": {
                    "schedule": "*/10 * * * *",
                    "concurrencyPolicy": "Allow",
                    "suspend": False,
                    "jobTemplate": {
                        "metadata": {"labels": {"app": w.name}},
                        "spec": _job_spec(w, side),
                    },
                    "successfulJobsHistoryLimit": 3,
                    "failedJobsHistoryLimit": 1,
                },
            },
        )
        for index in range(w.replicas):
            objects.create(
                store,
                JOB,
                {
                    "metadata": {
                        "name": f"{w.name}-{29000000 + index}",
                        "namespace": w.namespace,
                        "labels": {"app": w.name},
                        "ownerReferences": [owner_reference(cronjob)],
                    },
                    "spec": _job_spec(w, side),
                },
            )
    for w in config.pods:
        template = pod_template(w, side)
        objects.create(
            store, POD, {"metadata": {**_meta(w), **template["metadata"]}, "spec": template["spec"]}
        )
    ports = {
        (w.namespace, w.name): w.port
        for group in (
            config.deployments,
            config.statefulsets,
            config.daemonsets,
            config.jobs,
            config.cronjobs,
            config.pods,
        )
        for w in group
    }
    for index, (namespace, name) in enumerate(config.services):
        port = ports.get((namespace, name), 80)
        objects.create(
            store,
            SERVICE,
            {
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "spec": {
                    "selector": {"app": name},
                    "type": "ClusterIP",
                    "clusterIP": f"10.96.{index // 250}.{index % 250 + 10}",
                    "ports": [
                        {"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}
                    ],
                },
            },
        )


def _job_spec(workload: Workload, sidecar: str | None) -> Object:
    template = pod_template(workload, sidecar)
    template["spec"]["restartPolicy"] = "Never"
    return {"completions": 1, "parallelism": 1, "backoffLimit": 0, "template": template}


def expected_pods(config: SimConfig) -> int:
    """How many pods the seeded workloads make (those with failing images included)."""
    return (
        sum(w.replicas for w in config.deployments)
        + sum(w.replicas for w in config.statefulsets)
        + len(config.daemonsets) * config.nodes
        + len(config.jobs)
        + sum(w.replicas for w in config.cronjobs)
        + len(config.pods)
    )


def _node(name: str) -> Object:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/worker": "",
            },
        },
        "spec": {"podCIDR": "198.19.0.0/16"},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "addresses": [{"type": "Hostname", "address": name}],
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "nodeInfo": {
                "kubeletVersion": "v1.32.0-kubesim",
                "containerRuntimeVersion": "containerd://1.7.22",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "kubesim",
                "kernelVersion": "",
                "kubeProxyVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }
