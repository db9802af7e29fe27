"""Finding a target's network namespace and running code inside it.

``setns`` switches the namespace of the calling thread only. podtap enters a target in a
short-lived thread of its own, does what needs the namespace there (open the capture socket,
list interfaces) and switches back, so the rest of the process never leaves its namespace: a
socket keeps the namespace it was created in, wherever it is used afterwards.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from agent.errors import UserError

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21
MIN_CONTAINER_ID_PREFIX = 12

# Schemes Kubernetes puts before a container id in pod status (containerStatuses[].containerID).
_ID_SCHEMES = ("containerd://", "cri-o://", "docker://")
# How runtimes name a container's cgroup: a scope unit with a runtime prefix (systemd driver),
# or a bare id component (cgroupfs driver: /kubepods/.../<id>, /docker/<id>).
_SCOPE_PREFIXES = ("cri-containerd-", "crio-", "docker-", "libpod-")
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class NamespaceRef:
    """A network namespace file (``path``) and how the user named it (``description``)."""

    path: str
    description: str


def host_namespace(proc_root: str = "/proc") -> NamespaceRef:
    return NamespaceRef(f"{proc_root}/self/ns/net", "the host network namespace")


def pid_namespace(pid: int, proc_root: str = "/proc") -> NamespaceRef:
    if pid <= 0 or not os.path.exists(f"{proc_root}/{pid}"):
        raise UserError(f"No process with pid {pid} exists; check the pid with `ps`.")
    return NamespaceRef(f"{proc_root}/{pid}/ns/net", f"the network namespace of pid {pid}")


def named_namespace(name_or_path: str, netns_dir: str = "/run/netns") -> NamespaceRef:
    """``ip netns`` names live in ``netns_dir``; an absolute path is taken as it is."""
    if os.path.isabs(name_or_path):
        path = name_or_path
    elif "/" in name_or_path or name_or_path in ("", ".", ".."):
        raise UserError(
            f"Network namespace {name_or_path!r} is neither a name from `ip netns list` "
            "nor an absolute path."
        )
    else:
        path = os.path.join(netns_dir, name_or_path)
    if not os.path.exists(path):
        raise UserError(
            f"Network namespace {name_or_path!r} was not found (looked for {path}); "
            "list them with `ip netns list`."
        )
    return NamespaceRef(path, f"network namespace {name_or_path}")


def container_namespace(container_id: str, proc_root: str = "/proc") -> NamespaceRef:
    """The namespace of the lowest pid whose cgroup names the container ``container_id`` (a
    full id or a unique prefix of at least 12 hex digits, with or without a runtime scheme)."""
    wanted = _normalize_container_id(container_id)
    matches: dict[str, int] = {}
    for pid, full_id in _container_pids(proc_root):
        if full_id.startswith(wanted) and (full_id not in matches or pid < matches[full_id]):
            matches[full_id] = pid
    if not matches:
        raise UserError(
            f"Container {container_id!r} was not found in the cgroups of any process under "
            f"{proc_root}/*/cgroup; give the 64-hex-digit id (or its first 12 or more digits) "
            "as in the pod's status, e.g. containerd://3f2a9c..., on the node that runs it."
        )
    if len(matches) > 1:
        raise UserError(
            f"Container id prefix {container_id!r} matches {len(matches)} containers; "
            "give more of the id."
        )
    ((full_id, pid),) = matches.items()
    return NamespaceRef(f"{proc_root}/{pid}/ns/net", f"container {full_id[:12]} (pid {pid})")


def _normalize_container_id(container_id: str) -> str:
    text = container_id.strip().lower()
    for scheme in _ID_SCHEMES:
        if text.startswith(scheme):
            text = text[len(scheme) :]
            break
    if not re.fullmatch(r"[0-9a-f]{12,64}", text):
        raise UserError(
            f"Container id {container_id!r} is not 12 to 64 hex digits "
            "(optionally prefixed by containerd://, cri-o:// or docker://)."
        )
    return text


def _container_pids(proc_root: str) -> Iterator[tuple[int, str]]:
    """(pid, container id) for every process whose cgroup path names a container."""
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc_root}/{entry}/cgroup") as cgroup_file:
                text = cgroup_file.read()
        except OSError:
            continue  # the process exited while we looked, or is not ours to read
        container_id = container_id_in_cgroups(text)
        if container_id is not None:
            yield int(entry), container_id


def container_id_in_cgroups(cgroup_text: str) -> str | None:
    """The container id named in a ``/proc/PID/cgroup`` text (any cgroup version), if any."""
    for line in cgroup_text.splitlines():
        path = line.split(":", 2)[-1]
        for component in reversed(path.split("/")):
            found = _container_id_in_component(component)
            if found is not None:
                return found
    return None


def _container_id_in_component(component: str) -> str | None:
    name = component.removesuffix(".scope")
    # CRI-O's monitor process lives in crio-conmon-<id>.scope but in the host's namespace.
    if name.startswith("crio-conmon-"):
        return None
    for prefix in _SCOPE_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name if _CONTAINER_ID.fullmatch(name) else None


def check_capabilities(*, enter: bool) -> None:
    """Fail with one sentence unless this process may capture (and enter, if ``enter``)."""
    effective = _effective_capabilities()
    missing = []
    if not effective >> CAP_NET_RAW & 1:
        missing.append("CAP_NET_RAW")
    if enter and not effective >> CAP_SYS_ADMIN & 1:
        missing.append("CAP_SYS_ADMIN")
    if missing:
        raise UserError(
            f"podtap needs {' and '.join(missing)} to capture traffic; "
            "run it with sudo or grant the capability (e.g. securityContext.capabilities.add)."
        )


def _effective_capabilities() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return -1 if os.geteuid() == 0 else 0


def is_own_namespace(namespace: NamespaceRef) -> bool:
    try:
        target = os.stat(namespace.path)
    except OSError:
        return False
    own = os.stat(f"/proc/{os.getpid()}/ns/net")
    return (target.st_dev, target.st_ino) == (own.st_dev, own.st_ino)


def run_in_namespace(namespace: NamespaceRef, action: Callable[[], T]) -> T:
    """Run ``action`` in a fresh thread that has entered ``namespace``; return its result or
    raise its exception. The calling thread never changes namespace."""
    enter = not is_own_namespace(namespace)
    try:
        target_fd = os.open(namespace.path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UserError(
            f"The namespace of {namespace.description} is gone ({namespace.path} not found)."
        ) from None
    except PermissionError:
        raise UserError(
            f"Permission denied opening {namespace.path}; run podtap with sudo, "
            "in the same PID namespace as the target."
        ) from None
    outcome: list[T] = []
    failure: list[BaseException] = []

    def enter_and_run() -> None:
        try:
            if enter:
                with open("/proc/thread-self/ns/net") as home:
                    _setns(target_fd, namespace)
                    try:
                        outcome.append(action())
                    finally:
                        _setns(home.fileno(), namespace)
            else:
                outcome.append(action())
        except BaseException as error:
            failure.append(error)

    try:
        worker = threading.Thread(target=enter_and_run, name="podtap-setns", daemon=True)
        worker.start()
        worker.join()
    finally:
        os.close(target_fd)
    if failure:
        raise failure[0]
    return outcome[0]


def list_interfaces(namespace: NamespaceRef) -> list[tuple[int, str]]:
    """(index, name) of every interface of ``namespace``, as seen from inside it."""
    return run_in_namespace(namespace, socket.if_nameindex)


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, namespace: NamespaceRef) -> None:
    if _libc.setns(fd, CLONE_NEWNET) == 0:
        return
    code = ctypes.get_errno()
    if code == errno.EPERM:
        raise UserError(
            "podtap needs CAP_SYS_ADMIN to enter another network namespace; "
            "run it with sudo or grant the capability."
        )
    if code == errno.EINVAL:
        raise UserError(f"{namespace.path} is not a network namespace.")
    raise OSError(code, f"setns into {namespace.path}: {os.strerror(code)}")
