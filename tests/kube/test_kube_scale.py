"""Every replica at scale: 100 pods on 20 nodes, one agent per node, every request attributed.

Real processes throughout (a simulated pod is a network namespace running an HTTP server; a
node agent is a real ``podtap agent --node`` process), so this is the start-up a user gets.
"""

from __future__ import annotations

import re
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client

from tests.kube.dumping import DumpProcess, blocks_by_source
from tests.kube.test_kube_dump import agent_objects, wait_for
from tests.kubesim import KubeSim, PodInfo

pytestmark = [pytest.mark.root]


def ask(pod: PodInfo, path: str) -> str:
    with urllib.request.urlopen(f"http://{pod.ip}:8080{path}", timeout=10) as response:
        return str(response.headers["x-pod"])


@pytest.mark.kubesim("--deployment", "default/web=100:8080", "--nodes", "20")
@pytest.mark.timeout(300)
def test_a_hundred_replicas_on_twenty_nodes_are_each_tapped_by_their_nodes_agent(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    pods = kubesim.pods("default", "app=web")
    assert len(pods) == 100
    started = time.monotonic()
    dump = DumpProcess("deployment/web", "-p", "8080", kubeconfig=str(kubesim.kubeconfig))
    try:
        dump.wait_for_stderr(r"Listening for traffic", 60)
        dump.wait_for_stderr(r"agents 20/20 · pods 100/100", 90)
        all_tapped = time.monotonic() - started
        assert len(kubesim.agent_processes()) <= 20
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda pod: ask(pod, f"/to/{pod.name}"), pods))
        assert answers == [pod.name for pod in pods]
        for pod in pods:
            dump.wait_for_stdout(rf"Data: GET /to/{re.escape(pod.name)} HTTP/1.1", 30)
        assert dump.stop(signal.SIGINT) == 0
    finally:
        dump.kill()
    seen = blocks_by_source(dump.stdout)
    for pod in pods:
        assert seen.get(f"default/{pod.name}") == [f"GET /to/{pod.name} HTTP/1.1"]
    assert "Traceback" not in dump.stderr
    assert "failed" not in dump.stderr
    print(f"every pod tapped after {all_tapped:.1f} s")
    wait_for("every agent process to end", lambda: not kubesim.agent_processes(), 30)
    wait_for("every agent object to be deleted", lambda: not agent_objects(kube_client), 30)
