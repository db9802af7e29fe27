"""The agent as Kubernetes objects: a Job per node (with its token in a Secret the Job owns),
or an ephemeral container in each pod.

Pure: settings and a node or target pod in, API-shaped dicts out.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from agent.wire import TOKEN_ENV
from tui.sources.kube.options import DEFAULTS
from tui.sources.kube.pods import Pod

AGENT_PORT = 47000
"""Where a Job's agent listens, on its pod's loopback (each agent pod has its own namespace)."""

APP_LABEL = "app.kubernetes.io/name"
APP_VALUE = "podtap-agent"
SESSION_LABEL = "podtap.dev/session"
NODE_LABEL = "podtap.dev/node"
AGENT_CONTAINER = "agent"
TOKEN_KEY = "token"
BUNDLE_KEY = "agent.pyz"
CODE_VOLUME = "agent-code"
CODE_DIR = "/run/podtap"
"""Where the ConfigMap with the agent's zipapp is mounted (read-only) in a stock image."""

# What capture needs: NET_RAW for the packet socket, SYS_ADMIN to enter a pod's network
# namespace, SYS_PTRACE to open another process's /proc/PID/ns/net. NET_ADMIN is not needed
# (tests/integration/test_agent_capabilities.py captures without it).
JOB_CAPABILITIES = ["NET_RAW", "SYS_ADMIN", "SYS_PTRACE"]
EPHEMERAL_CAPABILITIES = ["NET_RAW"]
# Measured: a node agent tapping 5 pods idles at 40 MB RSS (2 MiB ring per pod, agent/budget.py,
# which sizes the buffers from this limit).
AGENT_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"cpu": "1", "memory": "256Mi"},
}


@dataclass(frozen=True, slots=True)
class AgentSettings:
    session: str
    """Short id that names and labels everything this session creates."""
    token: str
    image: str
    namespace: str | None
    """Where agent Jobs go; None means each target pod's own namespace."""
    ports: tuple[int, ...]
    privileged: bool = False
    first_client_timeout: int = int(DEFAULTS.agent_timeout)
    idle_timeout: int = DEFAULTS.agent_idle_timeout
    ttl_after_finished: int = 30
    active_deadline: int = 12 * 3600
    """A Job outlives no session by more than this, even if nobody ever deletes it."""

    def agent_namespace(self, target: Pod) -> str:
        return self.namespace or str(target["metadata"]["namespace"])

    ephemeral_port: int = AGENT_PORT + 1
    """Ephemeral agents share the target pod's namespace: each session picks a random port."""
    code_configmap: str | None = None
    """The ConfigMap holding the agent's zipapp for a stock Python image; None: the image has
    podtap installed."""

    @property
    def ephemeral_name(self) -> str:
        return f"podtap-{self.session}"


def session_selector(session: str) -> str:
    return f"{APP_LABEL}={APP_VALUE},{SESSION_LABEL}={session}"


def node_selector(session: str, node: str) -> str:
    return f"{session_selector(session)},{NODE_LABEL}={label_value(node)}"


def label_value(text: str) -> str:
    """Pod names can be 253 characters; label values only 63."""
    if len(text) <= 63:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{text[:52]}-{digest}"


def node_job_name(settings: AgentSettings, node: str, attempt: int = 0) -> str:
    digest = hashlib.sha256(node.encode()).hexdigest()[:6]
    again = f"-{attempt}" if attempt else ""
    return f"podtap-{settings.session}-{node[:36].rstrip('-.')}-{digest}{again}"


def agent_args(settings: AgentSettings, target_args: list[str], listen_port: int) -> list[str]:
    args = list(target_args)
    for port in settings.ports:
        args += ["--port", str(port)]
    args += [
        "--listen",
        f"127.0.0.1:{listen_port}",
        "--first-client-timeout",
        str(settings.first_client_timeout),
        "--idle-timeout",
        str(settings.idle_timeout),
    ]
    return args


_NO_MESH = {"sidecar.istio.io/inject": "false", "linkerd.io/inject": "disabled"}


def security_context(settings: AgentSettings, capabilities: list[str]) -> dict[str, Any]:
    """Only the capabilities capture needs, no way to gain more, nothing written to the image."""
    if settings.privileged:
        return {"privileged": True}  # the API refuses allowPrivilegeEscalation false with it
    return {
        "capabilities": {"drop": ["ALL"], "add": list(capabilities)},
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def token_env(secret: str) -> dict[str, Any]:
    return {
        "name": TOKEN_ENV,
        "valueFrom": {"secretKeyRef": {"name": secret, "key": TOKEN_KEY}},
    }


def token_secret(settings: AgentSettings, job: dict[str, Any], job_uid: str) -> dict[str, Any]:
    """The session token for ``job``'s agent, owned by the Job: it goes when the Job goes."""
    meta = job["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": dict(meta["labels"]),
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": job_uid}
            ],
        },
        "data": {TOKEN_KEY: base64.b64encode(settings.token.encode()).decode()},
    }


def node_agent_job(
    settings: AgentSettings, node: str, namespace: str, attempt: int = 0
) -> dict[str, Any]:
    """The agent that taps the target pods of ``node``: it sees the node's processes
    (hostPID), finds each pod's container by id and enters its network namespace; its token
    comes from the Secret of the same name (:func:`token_secret`)."""
    name = node_job_name(settings, node, attempt)
    labels = {
        APP_LABEL: APP_VALUE,
        SESSION_LABEL: settings.session,
        NODE_LABEL: label_value(node),
    }
    container: dict[str, Any] = {
        "name": AGENT_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["podtap", "agent"],
        "args": agent_args(settings, ["--node", node], AGENT_PORT),
        "env": [token_env(name), {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
        "resources": AGENT_RESOURCES,
        "securityContext": security_context(settings, JOB_CAPABILITIES),
    }
    volumes: list[dict[str, Any]] = []
    if settings.code_configmap is not None:
        container["command"] = ["python3", f"{CODE_DIR}/{BUNDLE_KEY}"]
        container["volumeMounts"] = [{"name": CODE_VOLUME, "mountPath": CODE_DIR, "readOnly": True}]
        volumes = [{"name": CODE_VOLUME, "configMap": {"name": settings.code_configmap}}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": settings.ttl_after_finished,
            "activeDeadlineSeconds": settings.active_deadline,
            "template": {
                "metadata": {"labels": labels, "annotations": dict(_NO_MESH)},
                "spec": {
                    "hostPID": True,
                    "nodeName": node,
                    "restartPolicy": "Never",
                    "tolerations": [{"operator": "Exists"}],
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 5,
                    "containers": [container],
                    **({"volumes": volumes} if volumes else {}),
                },
            },
        },
    }


def dry_run_node_pod(settings: AgentSettings, node: str, namespace: str) -> dict[str, Any]:
    """The pod a node agent's Job would create, for admission (Pod Security) to judge first."""
    job = node_agent_job(settings, node, namespace)
    template = job["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": job["metadata"]["name"] + "-check",
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
        },
        "spec": template["spec"],
    }


def ephemeral_container(settings: AgentSettings) -> dict[str, Any]:
    """The agent as an ephemeral container: it already lives in the pod's network namespace."""
    return {
        "name": settings.ephemeral_name,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["podtap", "agent"],
        "args": agent_args(settings, ["--host"], settings.ephemeral_port),
        "env": [{"name": TOKEN_ENV, "value": settings.token}],
        "securityContext": security_context(settings, EPHEMERAL_CAPABILITIES),
    }


def ephemeral_patch(settings: AgentSettings, target: Pod) -> dict[str, Any]:
    existing = list(target["spec"].get("ephemeralContainers") or [])
    return {"spec": {"ephemeralContainers": [*existing, ephemeral_container(settings)]}}
