"""The simulator seen through the official kubernetes client: pods, list/watch, scaling, Jobs
run by the kubelet, and port-forward."""

from __future__ import annotations

import os
import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.stream import portforward

from tests.kubesim import KubeSim
from tests.kubesim.clients import apps_api, batch_api, core_api

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.1)


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_deployment_pods_are_real_servers_in_their_container_cgroups(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    core = core_api(kube_client)
    pods = core.list_namespaced_pod("default", label_selector="app=web").items
    assert len(pods) == 3
    assert {pod.spec.node_name for pod in pods} == {"node-1", "node-2"}
    deployment = apps_api(kube_client).read_namespaced_deployment("web", "default")
    assert deployment.status.ready_replicas == 3
    for pod in pods:
        assert pod.status.phase == "Running"
        assert is_ready(pod)
        assert re.fullmatch(r"web-[a-z0-9]{10}-[a-z0-9]{5}", pod.metadata.name)
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"
        assert pod.metadata.labels["pod-template-hash"] in pod.metadata.name
        assert pod.spec.containers[0].ports[0].container_port == 8080
        container_id = pod.status.container_statuses[0].container_id
        assert re.fullmatch(r"containerd://[0-9a-f]{64}", container_id)
        with urllib.request.urlopen(f"http://{pod.status.pod_ip}:8080/ping", timeout=5) as reply:
            assert reply.headers["x-pod"] == pod.metadata.name
        server = next(p for p in kubesim.processes() if p.pod == pod.metadata.name)
        cgroup = Path(f"/proc/{server.pid}/cgroup").read_text()
        assert container_id.removeprefix("containerd://") in cgroup
        assert f"pod{pod.metadata.uid}" in cgroup


def test_list_honours_label_and_field_selectors(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    core = core_api(kube_client)
    assert core.list_namespaced_pod("default", label_selector="app!=web").items == []
    assert len(core.list_pod_for_all_namespaces(label_selector="app in (web,api)").items) == 3
    on_node_1 = core.list_namespaced_pod("default", field_selector="spec.nodeName=node-1").items
    assert {p.spec.node_name for p in on_node_1} == {"node-1"}
    assert len(on_node_1) == 2
    assert [n.metadata.name for n in core.list_node().items] == ["node-1", "node-2"]
    # A quiet watch that allows bookmarks ends with one carrying the current version.
    listed = core.list_namespaced_pod("default")
    stream: Any = watch.Watch()  # type: ignore[no-untyped-call]
    events = list(
        stream.stream(
            core.list_namespaced_pod,
            "default",
            allow_watch_bookmarks=True,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
        )
    )
    assert [e["type"] for e in events] == ["BOOKMARK"]
    assert int(stream.resource_version) >= int(listed.metadata.resource_version)
    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_pod("nope", "default")
    assert missing.value.status == 404
    assert '"message": "pods \\"nope\\" not found"' in str(missing.value.body)


def test_watch_follows_scaling_up_and_down(kubesim: KubeSim, kube_client: client.ApiClient) -> None:
    core, apps = core_api(kube_client), apps_api(kube_client)
    listed = core.list_namespaced_pod("default", label_selector="app=web")
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    seen_ready: set[str] = set()
    known = {p.metadata.name for p in listed.items}
    stream: Any = watch.Watch()  # type: ignore[no-untyped-call]
    for event in stream.stream(
        core.list_namespaced_pod,
        "default",
        label_selector="app=web",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=20,
    ):
        pod = event["object"]
        if event["type"] in ("ADDED", "MODIFIED") and is_ready(pod):
            seen_ready.add(pod.metadata.name)
        if seen_ready - known:
            stream.stop()
    new_pod = (seen_ready - known).pop()
    assert new_pod.startswith("web-")
    assert apps.read_namespaced_deployment_scale("web", "default").status.replicas == 4

    listed = core.list_namespaced_pod("default", label_selector="app=web")
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 2}})
    deleted = []
    for event in stream.stream(
        core.list_namespaced_pod,
        "default",
        label_selector="app=web",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=20,
    ):
        if event["type"] == "DELETED":
            deleted.append(event["object"].metadata.name)
            if len(deleted) == 2:
                stream.stop()
    assert len(deleted) == 2
    assert len(kubesim.pods("default", "app=web")) == 2

    # After compaction, resuming from an old resourceVersion is 410 Gone (an ERROR event).
    kubesim.compact()
    with pytest.raises(client.ApiException) as gone:
        for _ in stream.stream(
            core.list_namespaced_pod,
            "default",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=5,
        ):
            pass
    assert gone.value.status == 410


def _pod_with_command(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "main", "image": "busybox", "command": command}],
            "restartPolicy": "Never",
            **spec,
        },
    }


def test_job_pod_runs_its_command_in_a_new_netns_with_host_pids(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    batch, core = batch_api(kube_client), core_api(kube_client)
    script = (
        f"import os; print(os.readlink('/proc/self/ns/net')); "
        f"print(os.path.exists('/proc/{os.getpid()}'))"
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "probe"},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 60,
            "template": {
                "spec": {
                    "hostPID": True,
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "probe", "image": "python", "command": ["python3", "-c", script]}
                    ],
                }
            },
        },
    }
    batch.create_namespaced_job("default", job)
    done = eventually(
        lambda: (batch.read_namespaced_job("probe", "default").status.succeeded or 0) >= 1
    )
    assert done
    pod = core.list_namespaced_pod("default", label_selector="job-name=probe").items[0]
    assert pod.status.phase == "Succeeded"
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0
    assert terminated.reason == "Completed"
    netns, sees_host_pid = core.read_namespaced_pod_log(pod.metadata.name, "default").split()
    assert netns != os.readlink("/proc/self/ns/net")
    assert sees_host_pid == "True"
    conditions = batch.read_namespaced_job("probe", "default").status.conditions
    assert "Complete" in {c.type for c in conditions}

    # Without hostPID, a container is pid 1 of its own PID namespace and sees only itself.
    core.create_namespaced_pod(
        "default", _pod_with_command("private", ["python3", "-c", script + "; print(os.getpid())"])
    )
    eventually(lambda: core.read_namespaced_pod("private", "default").status.phase == "Succeeded")
    _, sees_host_pid, own_pid = core.read_namespaced_pod_log("private", "default").split()
    assert (sees_host_pid, own_pid) == ("False", "1")

    batch.delete_namespaced_job("probe", "default", propagation_policy="Background")
    eventually(
        lambda: not core.list_namespaced_pod("default", label_selector="job-name=probe").items
    )


def test_jobs_orphan_their_pods_by_default_like_the_real_api(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    batch, core = batch_api(kube_client), core_api(kube_client)
    job = {
        "metadata": {"name": "sleeper"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "s", "image": "busybox", "command": ["sleep", "30"]}],
                }
            },
        },
    }
    batch.create_namespaced_job("default", job)
    eventually(
        lambda: any(
            p.status.phase == "Running"
            for p in core.list_namespaced_pod("default", label_selector="job-name=sleeper").items
        )
    )
    batch.delete_namespaced_job("sleeper", "default")
    time.sleep(1)
    orphan = core.list_namespaced_pod("default", label_selector="job-name=sleeper").items
    assert len(orphan) == 1
    assert orphan[0].metadata.owner_references is None
    core.delete_namespaced_pod(orphan[0].metadata.name, "default", grace_period_seconds=0)
    eventually(
        lambda: not core.list_namespaced_pod("default", label_selector="job-name=sleeper").items
    )


ECHO_SERVER = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', 47000)); s.listen()\n"
    "while True:\n"
    "    c, _ = s.accept()\n"
    "    while data := c.recv(65536):\n"
    "        c.sendall(data)\n"
    "    c.close()\n"
)


def _recv_exactly(sock: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_port_forward_reaches_a_loopback_listener_inside_the_pod(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    core = core_api(kube_client)
    core.create_namespaced_pod("default", _pod_with_command("echo", ["python3", "-c", ECHO_SERVER]))
    eventually(lambda: core.read_namespaced_pod("echo", "default").status.phase == "Running")
    payload = os.urandom(300_000)
    for _ in range(2):  # a new port-forward per connection, as podtap makes them
        forward = eventually(lambda: _connected_forward(core, "echo"))
        sock = forward.socket(47000)
        sock.sendall(payload)
        assert _recv_exactly(sock, len(payload)) == payload
        sock.close()

    # A cut (network or API server gone) closes the client's socket; a new forward works.
    forward = eventually(lambda: _connected_forward(core, "echo"))
    assert kubesim.cut_port_forwards("default", "echo") == 1
    sock = forward.socket(47000)
    sock.settimeout(10)
    assert sock.recv(10) == b""
    assert eventually(lambda: _connected_forward(core, "echo"))

    # Nothing listens on 47001: the error channel says so and the socket closes.
    forward = portforward(
        core.connect_get_namespaced_pod_portforward, "echo", "default", ports="47001"
    )
    sock = forward.socket(47001)
    sock.settimeout(10)
    assert sock.recv(10) == b""
    assert "connection refused" in (forward.error(47001) or "")


def _connected_forward(core: client.CoreV1Api, name: str) -> Any:
    """A port-forward whose listener answered (the pod's server may still be binding)."""
    forward = portforward(
        core.connect_get_namespaced_pod_portforward, name, "default", ports="47000"
    )
    sock = forward.socket(47000)
    sock.settimeout(5)
    try:
        sock.sendall(b"x")
        if sock.recv(1) == b"x":
            sock.settimeout(None)
            return forward
    except OSError:  # refused (not listening yet): the error channel closed the socket
        pass
    sock.close()
    return None


@pytest.mark.timeout(120)
def test_a_rollout_replaces_every_pod_without_dropping_below_the_replica_count(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    core, apps = core_api(kube_client), apps_api(kube_client)
    before = {
        p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=web").items
    }
    listed = core.list_namespaced_pod("default", label_selector="app=web")
    # What `kubectl rollout restart` does: a new annotation in the pod template.
    apps.patch_namespaced_deployment(
        "web",
        "default",
        {
            "spec": {
                "template": {
                    "metadata": {
                        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}
                    }
                }
            }
        },
    )
    ready = dict.fromkeys(before, True)
    lowest = 3
    stream: Any = watch.Watch()  # type: ignore[no-untyped-call]
    for event in stream.stream(
        core.list_namespaced_pod,
        "default",
        label_selector="app=web",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=90,
    ):
        pod = event["object"]
        if event["type"] == "DELETED":
            ready.pop(pod.metadata.name, None)
        else:
            ready[pod.metadata.name] = is_ready(pod) and not pod.metadata.deletion_timestamp
        lowest = min(lowest, sum(ready.values()))
        if not (set(ready) & before) and sum(ready.values()) == 3:
            stream.stop()
    assert lowest >= 3  # maxUnavailable 25% of 3 rounds down to 0
    assert len(ready) == 3
    assert not set(ready) & before
    replica_sets = apps.list_namespaced_replica_set("default").items
    assert sorted(rs.spec.replicas for rs in replica_sets) == [0, 3]
