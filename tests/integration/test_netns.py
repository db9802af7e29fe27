"""agent.netns against real namespaces, processes and cgroups (root only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.errors import UserError
from agent.netns import (
    container_namespace,
    host_namespace,
    list_interfaces,
    named_namespace,
    pid_namespace,
    run_in_namespace,
)
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.timeout(30)]

REPO = Path(__file__).resolve().parents[2]


def own_thread_namespace() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def lab_interfaces(lab: Lab) -> set[str]:
    names = {name for _, name in list_interfaces(named_namespace(lab.name))}
    assert "lo" in names
    return names


def test_named_namespace_and_path_see_the_lab_and_the_caller_stays_home(lab: Lab) -> None:
    home = own_thread_namespace()
    names = lab_interfaces(lab)
    assert any(name.startswith("vn") for name in names)
    assert {name for _, name in list_interfaces(named_namespace(lab.path))} == names
    assert own_thread_namespace() == home
    inside = run_in_namespace(named_namespace(lab.name), own_thread_namespace)
    assert inside != home


def test_host_namespace_is_this_one() -> None:
    home = own_thread_namespace()
    assert run_in_namespace(host_namespace(), own_thread_namespace) == home


def test_errors_inside_are_raised_to_the_caller(lab: Lab) -> None:
    def fail() -> None:
        raise LookupError("from inside")

    with pytest.raises(LookupError, match="from inside"):
        run_in_namespace(named_namespace(lab.name), fail)
    assert own_thread_namespace() == os.stat(f"/proc/{os.getpid()}/ns/net").st_ino


@contextmanager
def sleeper(lab: Lab) -> Iterator[subprocess.Popen[bytes]]:
    """A process living in the lab namespace (`ip netns exec` execs it: same pid)."""
    process = lab.popen(["sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        lab_inode = os.stat(lab.path).st_ino
        while os.stat(f"/proc/{process.pid}/ns/net").st_ino != lab_inode:
            assert time.monotonic() < deadline, "sleeper never entered the lab namespace"
            time.sleep(0.01)
        yield process
    finally:
        process.kill()
        process.wait()


def test_pid_target(lab: Lab) -> None:
    with sleeper(lab) as process:
        names = {name for _, name in list_interfaces(pid_namespace(process.pid))}
    assert names == lab_interfaces(lab)


@contextmanager
def fake_container_cgroup(hierarchy: str, relative: str, pid: int) -> Iterator[None]:
    """Put ``pid`` into a new cgroup ``relative`` (nested dirs) under ``hierarchy``."""
    root = Path(hierarchy)
    if not (root / "cgroup.procs").exists():
        pytest.skip(f"no cgroup hierarchy mounted at {hierarchy}")
    top = root / relative.split("/")[0]
    leaf = root / relative
    leaf.mkdir(parents=True)
    try:
        (leaf / "cgroup.procs").write_text(str(pid))
        yield
    finally:
        # A cgroup can be removed once it is empty: move the process out if it still lives.
        if _alive(pid):
            (root / "cgroup.procs").write_text(str(pid))
        for directory in sorted(
            (p for p in [top, *top.rglob("*")] if p.is_dir()), key=lambda p: -len(p.parts)
        ):
            _rmdir(directory)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


def _rmdir(directory: Path) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize(
    ("hierarchy", "layout", "given"),
    [
        ("/sys/fs/cgroup/unified", "podtap-{pid}/cri-containerd-{id}.scope", "containerd://{id}"),
        ("/sys/fs/cgroup/unified", "podtap-{pid}/crio-{id}.scope", "cri-o://{short}"),
        ("/sys/fs/cgroup/memory", "podtap-{pid}/kubepods/pod-1/{id}", "{id}"),
        ("/sys/fs/cgroup/pids", "podtap-{pid}/docker/{id}", "docker://{short}"),
    ],
    ids=["v2-containerd", "v2-crio", "v1-kubepods", "v1-docker"],
)
def test_container_id_in_a_real_cgroup(lab: Lab, hierarchy: str, layout: str, given: str) -> None:
    container_id = os.urandom(32).hex()
    with sleeper(lab) as process:
        relative = layout.format(pid=os.getpid(), id=container_id)
        with fake_container_cgroup(hierarchy, relative, process.pid):
            namespace = container_namespace(given.format(id=container_id, short=container_id[:12]))
            assert namespace.path == f"/proc/{process.pid}/ns/net"
            names = {name for _, name in list_interfaces(namespace)}
            process.kill()
            process.wait()
    assert names == lab_interfaces(lab)


def as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with this interpreter as an unprivileged user, all capabilities dropped."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    return subprocess.run(
        [
            setpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=20,
        check=False,
    )


def test_unprivileged_user_gets_one_sentence(lab: Lab) -> None:
    entering = as_nobody(
        "from agent.errors import UserError\n"
        "from agent.netns import list_interfaces, named_namespace\n"
        "try:\n"
        f"    list_interfaces(named_namespace({lab.name!r}))\n"
        "except UserError as error:\n"
        "    print(error)\n"
    )
    assert entering.stderr == ""
    assert "CAP_SYS_ADMIN" in entering.stdout
    assert "sudo" in entering.stdout
    capturing = as_nobody(
        "from agent.errors import UserError\n"
        "from agent.capture import Capture\n"
        "from agent.netns import host_namespace\n"
        "try:\n"
        "    Capture(host_namespace(), [80])\n"
        "except UserError as error:\n"
        "    print(error)\n"
    )
    assert capturing.stderr == ""
    assert "CAP_NET_RAW" in capturing.stdout
    assert "CAP_SYS_ADMIN" not in capturing.stdout
    entering_to_capture = as_nobody(
        "from agent.errors import UserError\n"
        "from agent.capture import Capture\n"
        "from agent.netns import named_namespace\n"
        "try:\n"
        f"    Capture(named_namespace({lab.name!r}), [80])\n"
        "except UserError as error:\n"
        "    print(error)\n"
    )
    assert "CAP_NET_RAW and CAP_SYS_ADMIN" in entering_to_capture.stdout


def test_a_file_that_is_not_a_network_namespace() -> None:
    with pytest.raises(UserError, match="is not a network namespace"):
        list_interfaces(named_namespace("/proc/self/ns/uts"))


def test_a_process_that_exits_after_resolution(lab: Lab) -> None:
    with sleeper(lab) as process:
        namespace = pid_namespace(process.pid)
    with pytest.raises(UserError, match=f"pid {process.pid} is gone"):
        list_interfaces(namespace)
