"""Every workload kind the simulator seeds, ephemeral containers, the real podtap agent as a Job
pod, and cleanup: nothing left behind after the simulator stops (also when run as a command)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.stream import portforward

from tests.kubesim import KubeSim, SimConfig, Workload
from tests.kubesim.clients import apps_api, batch_api, core_api
from tests.kubesim.containers import REPO_ROOT

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.1)
    return result


def names(items: list[Any]) -> list[str]:
    return sorted(item.metadata.name for item in items)


@pytest.mark.kubesim(
    "--statefulset",
    "data/db=2:5432",
    "--daemonset",
    "default/logs:9000",
    "--cronjob",
    "default/report=2:8081",
    "--job",
    "default/batch:8082",
    "--pod",
    "default/solo:8083",
    "--service",
    "default/solo",
    "--sidecar",
    "istio-proxy",
    "--nodes",
    "2",
)
def test_every_workload_kind_makes_the_pods_a_real_cluster_would(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    core, apps = core_api(kube_client), apps_api(kube_client)
    batch = batch_api(kube_client)
    assert names(core.list_namespaced_pod("data", label_selector="app=db").items) == [
        "db-0",
        "db-1",
    ]
    assert apps.read_namespaced_stateful_set("db", "data").status.ready_replicas == 2
    logs = core.list_namespaced_pod("default", label_selector="app=logs").items
    assert sorted(p.spec.node_name for p in logs) == ["node-1", "node-2"]
    assert logs[0].metadata.owner_references[0].kind == "DaemonSet"
    cronjob = batch.read_namespaced_cron_job("report", "default")
    jobs = [
        j
        for j in batch.list_namespaced_job("default").items
        if j.metadata.owner_references
        and j.metadata.owner_references[0].uid == cronjob.metadata.uid
    ]
    assert len(jobs) == 2
    assert {ref.name for ref in cronjob.status.active} == {j.metadata.name for j in jobs}
    job_pods = core.list_namespaced_pod("default", label_selector="job-name=batch").items
    assert len(job_pods) == 1
    assert job_pods[0].status.phase == "Running"
    solo = core.read_namespaced_pod("solo", "default")
    assert [c.name for c in solo.spec.containers] == ["istio-proxy", "solo"]
    assert [c.name for c in solo.status.container_statuses] == ["istio-proxy", "solo"]
    service = core.read_namespaced_service("solo", "default")
    assert service.spec.selector == {"app": "solo"}
    assert service.spec.ports[0].port == 8083
    with urllib.request.urlopen(f"http://{solo.status.pod_ip}:8083/", timeout=5) as reply:
        assert reply.headers["x-pod"] == "solo"


@pytest.mark.kubesim("--pod", "default/web:8080", "--nodes", "1")
def test_an_ephemeral_container_runs_in_the_pods_network_namespace(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    core = core_api(kube_client)
    patch = {
        "spec": {
            "ephemeralContainers": [
                {
                    "name": "podtap-s1",
                    "image": "ghcr.io/podtap/agent:0.1.0",
                    "command": ["sleep", "30"],
                    "securityContext": {"capabilities": {"add": ["NET_RAW", "NET_ADMIN"]}},
                }
            ]
        }
    }
    pod = core.patch_namespaced_pod_ephemeralcontainers("web", "default", patch)
    assert pod.spec.ephemeral_containers[0].name == "podtap-s1"

    def running() -> bool:
        statuses = core.read_namespaced_pod("web", "default").status
        return any(
            s.name == "podtap-s1" and s.state.running
            for s in statuses.ephemeral_container_statuses or []
        )

    eventually(running)
    processes = {p.container: p.pid for p in kubesim.processes() if p.pod == "web"}
    assert os.readlink(f"/proc/{processes['podtap-s1']}/ns/net") == os.readlink(
        f"/proc/{processes['web']}/ns/net"
    )
    with pytest.raises(client.ApiException) as changed:
        core.patch_namespaced_pod_ephemeralcontainers(
            "web",
            "default",
            {
                "spec": {
                    "ephemeralContainers": [
                        {**patch["spec"]["ephemeralContainers"][0], "command": ["true"]}
                    ]
                }
            },
        )
    assert changed.value.status == 422


@pytest.mark.skipif(not (REPO_ROOT / "agent" / "cli.py").exists(), reason="no podtap agent")
@pytest.mark.kubesim("--deployment", "default/web=1:8080", "--nodes", "1")
def test_an_agent_job_runs_podtap_agent_which_answers_through_port_forward(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    core, batch = core_api(kube_client), batch_api(kube_client)
    target = core.list_namespaced_pod("default", label_selector="app=web").items[0]
    container_id = target.status.container_statuses[0].container_id
    labels = {"app.kubernetes.io/name": "podtap-agent", "podtap.dev/session": "s1"}
    batch.create_namespaced_job(
        "default",
        {
            "metadata": {"name": "agent", "labels": labels},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "hostPID": True,
                        "restartPolicy": "Never",
                        "nodeName": target.spec.node_name,
                        "containers": [
                            {
                                "name": "agent",
                                "image": "ghcr.io/podtap/agent:0.1.0",
                                "command": ["podtap", "agent"],
                                "args": [
                                    "--container-id",
                                    container_id,
                                    "--port",
                                    "8080",
                                    "--listen",
                                    "127.0.0.1:47000",
                                    "--idle-timeout",
                                    "30",
                                ],
                                "env": [{"name": "PODTAP_TOKEN", "value": "t0ken"}],
                            }
                        ],
                    },
                },
            },
        },
    )
    agent = eventually(kubesim.agent_processes)[0]
    assert container_id in agent.argv
    pod_name = agent.pod
    assert os.readlink(f"/proc/{agent.pid}/ns/net") != os.readlink("/proc/self/ns/net")

    def answer() -> bytes:
        forward = portforward(
            core.connect_get_namespaced_pod_portforward, pod_name, "default", ports="47000"
        )
        sock = forward.socket(47000)
        sock.settimeout(5)
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: agent\r\n\r\n")
            reply = b""
            while chunk := sock.recv(4096):  # the agent closes after refusing
                reply += chunk
            return reply
        except OSError:
            return b""
        finally:
            sock.close()

    # Without the token the agent refuses: an HTTP answer from inside the agent pod.
    assert re.match(rb"HTTP/1\.1 40[13]", eventually(answer))
    batch.delete_namespaced_job("agent", "default", propagation_policy="Background")
    eventually(lambda: not kubesim.agent_processes())


def netns_of(simulator_pid: int) -> list[str]:
    prefix = f"kubesim{simulator_pid}-"
    return [name for name in os.listdir("/run/netns") if name.startswith(prefix)]


def links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_stopping_removes_every_namespace_process_and_cgroup() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    sim = KubeSim(SimConfig(nodes=2, deployments=[Workload("default", "web", 2, 8080)]))
    with sim:
        pods = sim.pods()
        pids = [p.pid for p in sim.processes()]
        bridge = sim.cluster.network.bridge
        cgroup_dirs = [
            d
            for runtime in sim.cluster.kubelet.runtimes.values()
            for run in runtime.containers.values()
            for d in run.cgroup_dirs
        ]
        assert len(pids) == 2
        assert all(Path(p.netns).exists() for p in pods)
        assert cgroup_dirs
        assert all(d.exists() for d in cgroup_dirs)
    assert not any(Path(p.netns).exists() for p in pods)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not any(d.exists() for d in cgroup_dirs)
    assert not any(d.parent.exists() for d in cgroup_dirs)  # the pod<uid> level too
    assert f"{bridge}:" not in links()


def test_the_command_prints_pods_then_ready_and_cleans_up_on_sigterm(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.kubesim",
            "--kubeconfig",
            str(kubeconfig),
            "--deployment",
            "default/web=3:8080",
            "--nodes",
            "2",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    try:
        while (line := process.stdout.readline().strip()) != "READY":
            assert line, "the simulator exited before READY"
            lines.append(line)
        assert len(lines) == 3
        for line in lines:
            assert re.fullmatch(r"pod default/web-\w+-\w+ 198\.19\.\d+\.\d+ node-[12]", line)
        ip = lines[0].split()[2]
        with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as reply:
            assert reply.headers["x-pod"] == lines[0].split()[1].split("/")[1]
        assert "current-context: kubesim" in kubeconfig.read_text()
        assert len(netns_of(process.pid)) == 3
        children = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 3
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert netns_of(process.pid) == []
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
    assert f"ksb{ip.split('.')[2]}:" not in links()


def test_a_new_simulator_sweeps_up_after_one_killed_hard(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.kubesim",
            "--kubeconfig",
            str(tmp_path / "kc"),
            "--pod",
            "default/web:8080",
            "--nodes",
            "1",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    while process.stdout.readline().strip() != "READY":
        assert process.poll() is None
    children = subprocess.run(
        ["pgrep", "-P", str(process.pid)], capture_output=True, text=True
    ).stdout.split()
    process.kill()
    process.wait()
    assert netns_of(process.pid)
    assert all(Path(f"/proc/{pid}").exists() for pid in children)
    with KubeSim(SimConfig(nodes=1)):
        assert netns_of(process.pid) == []
        eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 5)


@pytest.mark.kubesim("--nodes", "1", "--fail-image", "missing")
def test_restarts_logs_and_paged_lists(kubesim: KubeSim, kube_client: client.ApiClient) -> None:
    core = core_api(kube_client)
    crash = ["sh", "-c", "echo starting; exit 3"]
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "crasher"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": crash}]},
        },
    )

    def restarted() -> Any:
        pod = core.read_namespaced_pod("crasher", "default")
        statuses = pod.status.container_statuses or []
        return pod if statuses and statuses[0].restart_count >= 1 else None

    pod = eventually(restarted)
    assert pod.status.phase == "Running"
    assert pod.status.container_statuses[0].last_state.terminated.exit_code == 3
    assert core.read_namespaced_pod_log("crasher", "default").startswith("starting\n")

    follow = ["sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.2; done"]
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "talker"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "command": follow}],
            },
        },
    )
    eventually(lambda: core.read_namespaced_pod("talker", "default").status.phase != "Pending")
    streamed = core.read_namespaced_pod_log("talker", "default", follow=True)
    assert streamed == "line 1\nline 2\nline 3\n"
    assert core.read_namespaced_pod_log("talker", "default", tail_lines=1) == "line 3\n"

    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "stuck"},
            "spec": {"containers": [{"name": "c", "image": "missing:1", "command": ["true"]}]},
        },
    )
    with pytest.raises(client.ApiException) as waiting:
        core.read_namespaced_pod_log("stuck", "default")
    assert waiting.value.status == 400
    assert json.loads(str(waiting.value.body))["message"].startswith(
        'container "c" in pod "stuck" is waiting to start: '
    )

    first = core.list_namespaced_pod("default", limit=2)
    assert len(first.items) == 2
    assert first.metadata._continue
    rest = core.list_namespaced_pod("default", limit=2, _continue=first.metadata._continue)
    assert names(first.items) + names(rest.items) == ["crasher", "stuck", "talker"]
    assert rest.metadata._continue is None


@pytest.mark.kubesim("--nodes", "1")
def test_job_deadline_and_ttl_clean_up_like_the_job_controller(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    core, batch = core_api(kube_client), batch_api(kube_client)

    def job(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": 0,
                **spec,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "c", "image": "busybox", "command": command}],
                    }
                },
            },
        }

    batch.create_namespaced_job("default", job("slow", ["sleep", "60"], activeDeadlineSeconds=1))
    batch.create_namespaced_job("default", job("quick", ["true"], ttlSecondsAfterFinished=1))

    def failed_by_deadline() -> bool:
        conditions = batch.read_namespaced_job("slow", "default").status.conditions or []
        return any(c.type == "Failed" and c.reason == "DeadlineExceeded" for c in conditions)

    eventually(failed_by_deadline)
    eventually(
        lambda: not core.list_namespaced_pod("default", label_selector="job-name=slow").items
    )
    # Finished, then collected with its pod once the TTL has passed.
    eventually(lambda: "quick" not in names(batch.list_namespaced_job("default").items))
    eventually(
        lambda: not core.list_namespaced_pod("default", label_selector="job-name=quick").items
    )


@pytest.mark.skipif(not Path("/usr/bin/kubectl").exists(), reason="no kubectl")
def test_kubectl_lists_pods_with_the_usual_columns(kubesim: KubeSim) -> None:
    listing = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubesim.kubeconfig), "get", "pods", "-A", "-o", "wide"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    assert listing[0].split() == [
        "NAMESPACE",
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
    ]
    rows = [line.split() for line in listing[1:]]
    assert len(rows) == 3
    for row in rows:
        assert row[0] == "default"
        assert row[2:4] == ["1/1", "Running"]
    assert {row[6] for row in rows} == {p.ip for p in kubesim.pods()}
    assert {row[7] for row in rows} == {"node-1", "node-2"}


@pytest.mark.kubesim("--nodes", "1")
def test_a_host_network_pod_runs_in_the_nodes_namespace(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    core = core_api(kube_client)
    port = 40000 + os.getpid() % 20000
    server = (
        f"import socket; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen();"
        f" c, _ = s.accept(); c.sendall(b'host'); c.close()"
    )
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "on-host"},
            "spec": {
                "hostNetwork": True,
                "restartPolicy": "Never",
                "containers": [
                    {"name": "c", "image": "python", "command": ["python3", "-c", server]}
                ],
            },
        },
    )
    pod = eventually(
        lambda: (
            (p := core.read_namespaced_pod("on-host", "default")).status.phase == "Running" and p
        )
    )
    assert pod.status.pod_ip == pod.status.host_ip
    (process,) = [p for p in kubesim.processes() if p.pod == "on-host"]
    assert os.readlink(f"/proc/{process.pid}/ns/net") == os.readlink("/proc/self/ns/net")

    def answered() -> bytes:
        forward = portforward(
            core.connect_get_namespaced_pod_portforward, "on-host", "default", ports=str(port)
        )
        sock = forward.socket(port)
        sock.settimeout(5)
        try:
            return bytes(sock.recv(10))
        except OSError:
            return b""
        finally:
            sock.close()

    assert eventually(answered) == b"host"
