"""A container as the kubelet runs it: the command an image stands for, its volumes, the ids
containerd would report, and the state the kubelet tracks for it."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kubesim.store import Object

REPO_ROOT = Path(__file__).resolve().parents[2]


def container_command(pod: Object, spec: dict[str, Any]) -> list[str]:
    """What the container runs: ``podtap`` is podtap's own CLI from this checkout; an image's
    default entrypoint is the simulated workload server on the container's ports."""
    command = list(spec.get("command") or [])
    args = [str(arg) for arg in spec.get("args") or []]
    if not command:
        ports = [str(p["containerPort"]) for p in spec.get("ports") or []]
        return [
            sys.executable,
            "-m",
            "tests.kubesim.podserver",
            pod["metadata"]["name"],
            *ports,
            *args,
        ]
    if command[0] == "podtap":
        return [sys.executable, "-m", "tui", *command[1:], *args]
    if command[0] in ("python", "python3") and is_stock_python(spec.get("image", "")):
        # A stock Python image has the standard library and nothing else: no site-packages.
        return [sys.executable, "-S", *command[1:], *args]
    return [*command, *args]


def is_stock_python(image: str) -> bool:
    """``python:3.12-slim``, ``docker.io/library/python:3.12``...: Python alone."""
    return image.split("@")[0].rsplit("/", 1)[-1].split(":")[0] == "python"


def with_mounts(command: list[str], mounts: list[tuple[str, str]]) -> list[str]:
    """Run ``command`` in a mount namespace of its own where each host directory is bound at
    its mount path (a read-only volume of the container)."""
    if not mounts:
        return command
    script = (
        'while [ "$1" != -- ]; do mount --bind "$2" "$1" && '
        'mount -o remount,bind,ro "$1" || exit 1; shift 2; done; shift; exec "$@"'
    )
    pairs = [part for target, source in mounts for part in (target, source)]
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script,
        "sh",
        *pairs,
        "--",
        *command,
    ]


def in_own_pid_namespace(command: list[str]) -> list[str]:
    """Run ``command`` as pid 1 of a new PID namespace with its own /proc, as a container of a
    pod without hostPID runs. ``unshare`` stays outside as the shim: it waits for the command,
    exits with its status, and kills it if it dies itself."""
    return ["unshare", "--pid", "--kill-child", "--mount-proc", "--", *command]


def main_pid(pid: int) -> int:
    """The container's own process: the child of the ``unshare`` shim when there is one."""
    try:
        program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        if Path(program.decode()).name != "unshare":
            return pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pid
    return int(children[0]) if children else pid


def image_id(image: str) -> str:
    """The resolved reference containerd reports: registry/repository@sha256:digest."""
    digest = hashlib.sha256(image.encode()).hexdigest()
    repository = image.split("@")[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository[: -len(last)] + last.split(":")[0]
    first = repository.split("/")[0]
    if "/" not in repository:
        repository = f"docker.io/library/{repository}"
    elif "." not in first and ":" not in first and first != "localhost":
        repository = f"docker.io/{repository}"
    return f"{repository}@sha256:{digest}"


@dataclass
class ContainerRun:
    spec: dict[str, Any]
    ephemeral: bool
    container_id: str = field(default_factory=lambda: secrets.token_hex(32))
    cgroup_dirs: list[Path] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    ran: bool = False  # has started at least once (a pod stays Running through back-off)
    ready: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self) -> dict[str, Any]:
        image = self.spec.get("image", "")
        status: dict[str, Any] = {
            "name": self.name,
            "image": image,
            "imageID": "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
            "started": "running" in self.state,
        }
        if "waiting" not in self.state or self.restart_count:
            status["containerID"] = f"containerd://{self.container_id}"
            status["imageID"] = image_id(image)
        return status
