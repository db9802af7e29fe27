"""The agent as Kubernetes objects: a Job per tapped pod, or an ephemeral container.

Pure: settings and a target pod in, API-shaped dicts out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from agent import __version__
from agent.wire import TOKEN_ENV
from tui.sources.kube.pods import Pod, node_name, pod_name

DEFAULT_AGENT_IMAGE = f"podtap-agent:{__version__}"
AGENT_PORT = 47000
"""Where a Job's agent listens, on its pod's loopback (each agent pod has its own namespace)."""

APP_LABEL = "app.kubernetes.io/name"
APP_VALUE = "podtap-agent"
SESSION_LABEL = "podtap.dev/session"
TARGET_POD_LABEL = "podtap.dev/target-pod"
AGENT_CONTAINER = "agent"

JOB_CAPABILITIES = ["NET_RAW", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]
EPHEMERAL_CAPABILITIES = ["NET_RAW", "NET_ADMIN"]


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
    first_client_timeout: int = 60
    idle_timeout: int = 30
    ttl_after_finished: int = 30
    active_deadline: int = 12 * 3600
    """A Job outlives no session by more than this, even if nobody ever deletes it."""

    def agent_namespace(self, target: Pod) -> str:
        return self.namespace or str(target["metadata"]["namespace"])

    @property
    def ephemeral_port(self) -> int:
        """Ephemeral agents share the target pod's namespace, so each session needs its own port."""
        return AGENT_PORT + 1 + int(self.session, 16) % 1000

    @property
    def ephemeral_name(self) -> str:
        return f"podtap-{self.session}"


def session_selector(session: str) -> str:
    return f"{APP_LABEL}={APP_VALUE},{SESSION_LABEL}={session}"


def agent_selector(session: str, target_pod: str) -> str:
    return f"{session_selector(session)},{TARGET_POD_LABEL}={label_value(target_pod)}"


def label_value(text: str) -> str:
    """Pod names can be 253 characters; label values only 63."""
    if len(text) <= 63:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{text[:52]}-{digest}"


def job_name(settings: AgentSettings, target: Pod) -> str:
    name = pod_name(target)
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    # The Job controller copies the Job name into a label: it must stay within 63 characters.
    return f"podtap-{settings.session}-{name[:40].rstrip('-.')}-{digest}"


def agent_args(settings: AgentSettings, target_args: list[str], listen_port: int) -> list[str]:
    args = list(target_args)
    for port in settings.ports:
        args += ["--port", str(port)]
    args += [
        "--listen", f"127.0.0.1:{listen_port}",
        "--first-client-timeout", str(settings.first_client_timeout),
        "--idle-timeout", str(settings.idle_timeout),
    ]
    return args


def _labels(settings: AgentSettings, target: Pod) -> dict[str, str]:
    return {
        APP_LABEL: APP_VALUE,
        SESSION_LABEL: settings.session,
        TARGET_POD_LABEL: label_value(pod_name(target)),
    }


_NO_MESH = {"sidecar.istio.io/inject": "false", "linkerd.io/inject": "disabled"}


def agent_pod_spec(settings: AgentSettings, target: Pod, container_id: str) -> dict[str, Any]:
    """The pod spec of the agent that taps ``target``: on its node, seeing the node's processes
    (hostPID), so that it can find the container by id and enter its network namespace."""
    security: dict[str, Any] = (
        {"privileged": True}
        if settings.privileged
        else {"capabilities": {"add": JOB_CAPABILITIES}}
    )
    spec: dict[str, Any] = {
        "hostPID": True,
        "restartPolicy": "Never",
        "tolerations": [{"operator": "Exists"}],
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 5,
        "containers": [
            {
                "name": AGENT_CONTAINER,
                "image": settings.image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["podtap", "agent"],
                "args": agent_args(settings, ["--container-id", container_id], AGENT_PORT),
                "env": [{"name": TOKEN_ENV, "value": settings.token}],
                "resources": {
                    "requests": {"cpu": "50m", "memory": "64Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                },
                "securityContext": security,
            }
        ],
    }
    node = node_name(target)
    if node is not None:
        spec["nodeName"] = node
    return spec


def agent_job(settings: AgentSettings, target: Pod, container_id: str) -> dict[str, Any]:
    labels = _labels(settings, target)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(settings, target),
            "namespace": settings.agent_namespace(target),
            "labels": labels,
        },
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": settings.ttl_after_finished,
            "activeDeadlineSeconds": settings.active_deadline,
            "template": {
                "metadata": {"labels": labels, "annotations": dict(_NO_MESH)},
                "spec": agent_pod_spec(settings, target, container_id),
            },
        },
    }


def dry_run_pod(settings: AgentSettings, target: Pod, container_id: str) -> dict[str, Any]:
    """The pod the Job would create, to be checked by admission (Pod Security) before any Job."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": job_name(settings, target) + "-check",
            "namespace": settings.agent_namespace(target),
            "labels": _labels(settings, target),
            "annotations": dict(_NO_MESH),
        },
        "spec": agent_pod_spec(settings, target, container_id),
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
        "securityContext": {"capabilities": {"add": EPHEMERAL_CAPABILITIES}},
    }


def ephemeral_patch(settings: AgentSettings, target: Pod) -> dict[str, Any]:
    existing = list(target["spec"].get("ephemeralContainers") or [])
    return {"spec": {"ephemeralContainers": [*existing, ephemeral_container(settings)]}}
