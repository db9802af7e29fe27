"""Reading an agent pod's status: still starting, running, or failed (with one sentence why).

Pure: the pod (API JSON shape) in, a verdict out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tui.sources.kube.pods import Pod, pod_name

Phase = Literal["starting", "running", "failed"]

_PULL_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
_CONFIG_FAILURES = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)


@dataclass(frozen=True, slots=True)
class AgentPodState:
    phase: Phase
    detail: str = ""
    """Why it is still starting (for a timeout sentence) or why it failed."""
    wants_log: bool = False
    """The agent ran and stopped: its own last log line says best why."""


def agent_container_state(pod: Pod, container: str, *, ephemeral: bool = False) -> AgentPodState:
    status = pod.get("status") or {}
    key = "ephemeralContainerStatuses" if ephemeral else "containerStatuses"
    statuses = [s for s in status.get(key) or [] if s.get("name") == container]
    image = _image_of(pod, container, ephemeral)
    if statuses:
        verdict = _from_container_status(statuses[0], image, pod)
        if verdict is not None:
            return verdict
    if not ephemeral:
        phase = status.get("phase")
        if phase in ("Failed", "Succeeded"):
            reason = status.get("reason") or status.get("message") or phase.lower()
            return AgentPodState(
                "failed", f"the agent pod {pod_name(pod)} stopped ({reason})", wants_log=True
            )
        for condition in status.get("conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
            ):
                message = condition.get("message") or "no node fits it"
                return AgentPodState(
                    "failed",
                    f"the agent pod {pod_name(pod)} cannot be scheduled: {message}",
                )
    return AgentPodState("starting", f"phase {status.get('phase') or 'Pending'}")


def _from_container_status(container: dict[str, Any], image: str, pod: Pod) -> AgentPodState | None:
    state = container.get("state") or {}
    if "running" in state and state["running"] is not None:
        return AgentPodState("running")
    waiting = state.get("waiting")
    if waiting:
        reason = waiting.get("reason") or ""
        message = waiting.get("message") or ""
        if reason in _PULL_FAILURES:
            return AgentPodState(
                "failed",
                f"the agent image {image} cannot be pulled ({reason}"
                + (f": {message}" if message else "")
                + "); build and load it as docs/kubernetes.md shows, or pass --agent-image",
            )
        if reason == "CreateContainerConfigError" and "not found" in message:
            # The token Secret is created right after the Job: the kubelet retries.
            return AgentPodState("starting", f"{reason}: {message}")
        if reason in _CONFIG_FAILURES:
            return AgentPodState(
                "failed",
                f"the agent container cannot start ({reason}: {message or 'no detail given'})",
            )
        if reason == "CrashLoopBackOff":
            return AgentPodState("failed", "the agent keeps crashing", wants_log=True)
        return AgentPodState("starting", reason or "waiting")
    terminated = state.get("terminated")
    if terminated:
        code = terminated.get("exitCode")
        why = terminated.get("message") or terminated.get("reason") or "no reason given"
        return AgentPodState(
            "failed", f"the agent exited with code {code} ({why.strip()})", wants_log=True
        )
    return None


def _image_of(pod: Pod, container: str, ephemeral: bool) -> str:
    key = "ephemeralContainers" if ephemeral else "containers"
    for spec in (pod.get("spec") or {}).get(key) or []:
        if spec.get("name") == container:
            return str(spec.get("image") or "")
    return "(unknown)"


def last_meaningful_line(log: str) -> str:
    """The agent says why it stopped in its last line: skip blank lines and traceback noise."""
    for line in reversed(log.splitlines()):
        text = line.strip()
        if text and not text.startswith(("File ", "Traceback", "^")):
            return text
    return ""
