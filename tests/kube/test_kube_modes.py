"""Other ways to run agents: as ephemeral containers in the target pods, and --max-pods."""

from __future__ import annotations

import urllib.request

import pytest
from kubernetes import client

from tests.kube.dumping import DumpProcess, blocks_by_source
from tests.kubesim import KubeSim

pytestmark = [pytest.mark.root]


def get(ip: str, path: str) -> None:
    with urllib.request.urlopen(f"http://{ip}:8080{path}", timeout=5) as response:
        response.read()


@pytest.mark.kubesim("--deployment", "default/web=1:8080")
@pytest.mark.timeout(90)
def test_an_ephemeral_agent_taps_the_pod_it_joined(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    (pod,) = kubesim.pods("default", "app=web")
    dump = DumpProcess(
        "deployment/web",
        "--ephemeral",
        "--agent-idle-timeout",
        "2",
        kubeconfig=str(kubesim.kubeconfig),
    )
    try:
        dump.wait_for_stderr(r"Listening for traffic", 60)
        (agent,) = kubesim.agent_processes()
        assert agent.pod == pod.name
        assert agent.container.startswith("podtap-")
        assert "--host" in agent.argv
        get(pod.ip, "/through-ephemeral")
        dump.wait_for_stdout(r"Data: GET /through-ephemeral HTTP/1.1")
        assert dump.stop() == 0
    finally:
        dump.kill()
    assert blocks_by_source(dump.stdout)[f"default/{pod.name}"] == [
        "GET /through-ephemeral HTTP/1.1"
    ]
    jobs = client.BatchV1Api(kube_client).list_job_for_all_namespaces(
        label_selector="app.kubernetes.io/name=podtap-agent"
    )
    assert not jobs.items
    # An ephemeral container cannot be removed: its agent leaves once nobody listens.
    kubesim.wait_for(lambda: not kubesim.agent_processes(), timeout=20)


@pytest.mark.kubesim("--deployment", "default/web=3:8080", "--nodes", "2")
@pytest.mark.timeout(90)
def test_max_pods_limits_the_agents(kubesim: KubeSim) -> None:
    dump = DumpProcess("deployment/web", "--max-pods", "2", kubeconfig=str(kubesim.kubeconfig))
    try:
        dump.wait_for_stderr(r"Listening for traffic", 60)
        assert "podtap: Tapping 2 of 3 ready pods (--max-pods 2)." in dump.stderr
        dump.wait_for_stderr(r"pods 2/2", 30)
        assert 1 <= len(kubesim.agent_processes()) <= 2  # one per node of the chosen pods
        assert dump.stop() == 0
    finally:
        dump.kill()


@pytest.mark.kubesim("--deployment", "default/web=2:8080", "--nodes", "1")
@pytest.mark.timeout(90)
def test_by_default_the_agent_runs_on_a_stock_python_image_from_a_configmap(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    pods = kubesim.pods("default", "app=web")
    dump = DumpProcess("deployment/web", kubeconfig=str(kubesim.kubeconfig))
    try:
        dump.wait_for_stderr(r"agents 1/1 · pods 2/2", 60)
        core = client.CoreV1Api(kube_client)
        (agent_pod,) = core.list_namespaced_pod(
            "default", label_selector="app.kubernetes.io/name=podtap-agent"
        ).items
        (container,) = agent_pod.spec.containers
        assert container.image == "python:3.12-slim"
        assert container.command == ["python3", "/run/podtap/agent.pyz"]

        def code_owners() -> list[str]:
            (configmap,) = core.list_namespaced_config_map(
                "default", label_selector="app.kubernetes.io/name=podtap-agent"
            ).items
            return [o.kind for o in configmap.metadata.owner_references or []]

        # The Jobs of a start-up are named owners in one patch, once they are all created.
        kubesim.wait_for(lambda: code_owners() == ["Job"], timeout=20)
        # The simulator runs a stock Python image's python3 without site-packages: no
        # msgspec, no websockets but the zipapp's own.
        (agent,) = kubesim.agent_processes()
        assert agent.argv[1:3] == ["-S", "/run/podtap/agent.pyz"]
        for pod in pods:
            get(pod.ip, f"/stock/{pod.name}")
        for pod in pods:
            dump.wait_for_stdout(rf"Data: GET /stock/{pod.name} HTTP/1.1")
        assert dump.stop() == 0
    finally:
        dump.kill()
    seen = blocks_by_source(dump.stdout)
    for pod in pods:
        assert seen[f"default/{pod.name}"] == [f"GET /stock/{pod.name} HTTP/1.1"]


@pytest.mark.kubesim("--deployment", "default/web=1:8080")
@pytest.mark.timeout(90)
def test_an_agent_image_with_podtap_needs_no_configmap(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    (pod,) = kubesim.pods("default", "app=web")
    dump = DumpProcess("deployment/web", "--agent-from-image", kubeconfig=str(kubesim.kubeconfig))
    try:
        dump.wait_for_stderr(r"pods 1/1", 60)
        (agent,) = kubesim.agent_processes()
        assert agent.argv[1:4] == ["-m", "tui", "agent"]
        assert (
            not client.CoreV1Api(kube_client)
            .list_namespaced_config_map(
                "default", label_selector="app.kubernetes.io/name=podtap-agent"
            )
            .items
        )
        get(pod.ip, "/from-image")
        dump.wait_for_stdout(r"Data: GET /from-image HTTP/1.1")
        assert dump.stop() == 0
    finally:
        dump.kill()
