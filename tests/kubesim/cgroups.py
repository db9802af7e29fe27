"""Container cgroups laid out the way kubelet's cgroupfs driver and containerd lay them out,
so that ``/proc/PID/cgroup`` of a container process names its container id."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The v1 hierarchies a container joins, plus the (hybrid) unified v2 hierarchy.
HIERARCHIES = ("cpu", "memory", "pids", "systemd", "unified")


def _available() -> list[Path]:
    return [
        CGROUP_ROOT / name for name in HIERARCHIES if (CGROUP_ROOT / name / "cgroup.procs").exists()
    ]


def pod_relative_path(qos_class: str, pod_uid: str) -> Path:
    if qos_class == "Guaranteed":
        return Path("kubepods") / f"pod{pod_uid}"
    return Path("kubepods") / qos_class.lower() / f"pod{pod_uid}"


def create_container_cgroups(qos_class: str, pod_uid: str, container_id: str) -> list[Path]:
    """Make ``kubepods/<qos>/pod<uid>/<container id>`` in every hierarchy; return the dirs."""
    made = []
    relative = pod_relative_path(qos_class, pod_uid) / container_id
    for hierarchy in _available():
        target = hierarchy / relative
        # Another simulator may be removing an empty shared parent at the same moment.
        for _ in range(5):
            try:
                target.mkdir(parents=True, exist_ok=True)
                break
            except FileNotFoundError:
                time.sleep(0.01)
        made.append(target)
    return made


def _pids(directory: Path) -> list[int]:
    try:
        return [int(line) for line in (directory / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def kill_and_remove(directories: list[Path]) -> None:
    """Kill what is left in the cgroups (as a runtime does on container removal), then remove
    them and the pod/qos/kubepods parents that became empty."""
    for _ in range(50):
        pids = {pid for directory in directories for pid in _pids(directory)}
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    for directory in directories:
        node = directory
        while node != node.parent and node.name != "" and node.parent != CGROUP_ROOT:
            try:
                node.rmdir()
            except OSError:
                break
            node = node.parent
