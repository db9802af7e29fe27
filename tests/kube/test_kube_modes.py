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
