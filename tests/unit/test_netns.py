"""agent.netns: resolving --pid / --netns / --container-id against a fake /proc tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import UserError
from agent.netns import (
    container_id_in_cgroups,
    container_namespace,
    named_namespace,
    pid_namespace,
)

ID_A = "3f2a9c0d1e2f" + "a" * 52
ID_B = "3f2a9c0d1e2f" + "b" * 52  # shares its first 12 digits with ID_A
ID_C = "c0ffee" + "1" * 58

CONTAINERD_V2 = f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c.slice/cri-containerd-{ID_A}.scope\n"  # noqa: E501
CONTAINERD_V1 = (
    "12:pids:/kubepods/besteffort/pod8d5f-11/" + ID_A + "\n"
    "11:memory:/kubepods/besteffort/pod8d5f-11/" + ID_A + "\n"
    "1:name=systemd:/kubepods/besteffort/pod8d5f-11/" + ID_A + "\n"
)
CRIO_V2 = f"0::/kubepods.slice/kubepods-pod77.slice/crio-{ID_B}.scope\n"
CRIO_CONMON = f"0::/kubepods.slice/kubepods-pod77.slice/crio-conmon-{ID_B}.scope\n"
DOCKER_SYSTEMD = f"0::/system.slice/docker-{ID_C}.scope\n"
DOCKER_CGROUPFS_V1 = f"4:cpu,cpuacct:/docker/{ID_C}\n3:memory:/docker/{ID_C}\n"
HOST_PROCESS = "0::/user.slice/user-0.slice/session-1.scope\n"


def fake_proc(root: Path, cgroups: dict[int, str]) -> str:
    for pid, text in cgroups.items():
        (root / str(pid)).mkdir()
        (root / str(pid) / "cgroup").write_text(text)
    (root / "self").mkdir()
    (root / "sys").mkdir()
    return str(root)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CONTAINERD_V2, ID_A),
        (CONTAINERD_V1, ID_A),
        (CRIO_V2, ID_B),
        (CRIO_CONMON, None),
        (DOCKER_SYSTEMD, ID_C),
        (DOCKER_CGROUPFS_V1, ID_C),
        (f"0::/libpod_parent/libpod-{ID_C}.scope/container\n", ID_C),
        (HOST_PROCESS, None),
        ("0::/\n", None),
        ("", None),
        (f"0::/kubepods/pod1/{ID_A[:63]}\n", None),
    ],
)
def test_container_id_in_cgroups(text: str, expected: str | None) -> None:
    assert container_id_in_cgroups(text) == expected


@pytest.fixture
def proc(tmp_path: Path) -> str:
    return fake_proc(
        tmp_path,
        {
            1: HOST_PROCESS,
            420: CONTAINERD_V2,
            77: CONTAINERD_V1,  # same container, lower pid: chosen
            500: CRIO_CONMON,  # CRI-O's monitor: in the host namespace, never chosen
            501: CRIO_V2,
            900: DOCKER_CGROUPFS_V1,
        },
    )


@pytest.mark.parametrize(
    ("given", "pid"),
    [
        (ID_A, 77),
        (ID_A[:13], 77),
        (f"containerd://{ID_A}", 77),
        (f"cri-o://{ID_B[:20]}", 501),
        (f"docker://{ID_C}", 900),
        (ID_C.upper()[:16], 900),
    ],
)
def test_container_is_found_by_full_id_or_prefix(proc: str, given: str, pid: int) -> None:
    namespace = container_namespace(given, proc_root=proc)
    assert namespace.path == f"{proc}/{pid}/ns/net"
    assert f"pid {pid}" in namespace.description


def test_short_prefix_is_refused(proc: str) -> None:
    with pytest.raises(UserError, match="12 to 64 hex digits"):
        container_namespace(ID_A[:11], proc_root=proc)


def test_ambiguous_prefix_is_refused(proc: str) -> None:
    with pytest.raises(UserError, match="matches 2 containers"):
        container_namespace(ID_A[:12], proc_root=proc)
    assert container_namespace(ID_A[:13], proc_root=proc).path.endswith("/77/ns/net")


def test_unknown_container_says_where_it_looked(proc: str) -> None:
    with pytest.raises(UserError, match=r"was not found .*/\*/cgroup.*64-hex-digit"):
        container_namespace("d" * 64, proc_root=proc)


def test_not_hex_is_refused(proc: str) -> None:
    with pytest.raises(UserError, match="hex digits"):
        container_namespace("my-container-name", proc_root=proc)


def test_pid(proc: str) -> None:
    assert pid_namespace(420, proc_root=proc).path == f"{proc}/420/ns/net"
    with pytest.raises(UserError, match="No process with pid 12345"):
        pid_namespace(12345, proc_root=proc)
    with pytest.raises(UserError, match="No process with pid 0"):
        pid_namespace(0, proc_root=proc)


def test_named_namespace(tmp_path: Path) -> None:
    (tmp_path / "blue").touch()
    assert named_namespace("blue", netns_dir=str(tmp_path)).path == str(tmp_path / "blue")
    assert named_namespace(str(tmp_path / "blue")).path == str(tmp_path / "blue")
    with pytest.raises(UserError, match=r"'green' was not found .*ip netns list"):
        named_namespace("green", netns_dir=str(tmp_path))
    with pytest.raises(UserError, match="neither a name"):
        named_namespace("relative/path", netns_dir=str(tmp_path))
