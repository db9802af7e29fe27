"""Removal of what a simulator killed without warning (SIGKILL, a crashed test run) left:
network namespaces of dead simulators, the processes still inside them, and old empty pod
cgroups. Run when a simulator starts."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from tests.kubesim.cgroups import CGROUP_ROOT, HIERARCHIES

_OWNED_NETNS = re.compile(r"^kubesim(\d+)-")
# A pod cgroup this old with no process in it belongs to nobody alive: a live simulator fills
# a container cgroup within milliseconds of making it.
_STALE_CGROUP_SECONDS = 120


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _processes_in(netns_path: Path) -> list[int]:
    try:
        inode = netns_path.stat().st_ino
    except OSError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "ns" / "net").stat().st_ino == inode:
                    found.append(int(entry.name))
    return found


def sweep_abandoned_netns() -> list[str]:
    removed: list[str] = []
    run_netns = Path("/run/netns")
    if not run_netns.is_dir():
        return removed
    for netns in run_netns.iterdir():
        owner = _OWNED_NETNS.match(netns.name)
        if owner is None or _alive(int(owner.group(1))):
            continue
        for pid in _processes_in(netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", netns.name], capture_output=True)
        removed.append(netns.name)
    return removed


def sweep_stale_cgroups() -> None:
    now = time.time()
    for hierarchy in HIERARCHIES:
        kubepods = CGROUP_ROOT / hierarchy / "kubepods"
        if not kubepods.is_dir():
            continue
        for pod_dir in [*kubepods.glob("pod*"), *kubepods.glob("*/pod*")]:
            with contextlib.suppress(OSError):
                if now - pod_dir.stat().st_mtime < _STALE_CGROUP_SECONDS:
                    continue
                for container in pod_dir.iterdir():
                    if container.is_dir() and not (container / "cgroup.procs").read_text():
                        container.rmdir()
                pod_dir.rmdir()
