"""Every replica at scale: 100 pods on 20 nodes, one agent per node, every request attributed.

Real processes throughout (a simulated pod is a network namespace running an HTTP server; a
node agent is a real ``podtap agent --node`` process), so this is the start-up a user gets.
"""

from __future__ import annotations

import os
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
@pytest.mark.timeout(480)
def test_a_hundred_replicas_on_twenty_nodes_then_twenty_more_are_each_tapped_by_their_nodes_agent(
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
        agents = {p.pid for p in kubesim.agent_processes()}

        # Scaled up: the new pods are tapped by the agents already on their nodes.
        kubesim.scale("default", "web", 120)
        dump.wait_for_stderr(r"agents 20/20 · pods 120/120", 90)
        added = [p for p in kubesim.pods("default", "app=web") if p not in pods]
        assert len(added) == 20
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda pod: ask(pod, f"/to/{pod.name}"), added))
        for pod in added:
            dump.wait_for_stdout(rf"Data: GET /to/{re.escape(pod.name)} HTTP/1.1", 30)
        assert {p.pid for p in kubesim.agent_processes()} == agents
        pods += added
        stopping = time.monotonic()
        assert dump.stop(signal.SIGINT, 20) == 0
        stopped = time.monotonic() - stopping
    finally:
        dump.kill()
    seen = blocks_by_source(dump.stdout)
    for pod in pods:
        assert seen.get(f"default/{pod.name}") == [f"GET /to/{pod.name} HTTP/1.1"]
    assert "Traceback" not in dump.stderr
    assert "failed" not in dump.stderr
    print(f"every pod tapped after {all_tapped:.1f} s; dump stopped {stopped:.1f} s after Ctrl+C")
    wait_for("every agent process to end", lambda: not kubesim.agent_processes(), 30)
    wait_for("every agent object to be deleted", lambda: not agent_objects(kube_client), 30)


def restart_rollout(kube_client: client.ApiClient, name: str) -> None:
    """What ``kubectl rollout restart`` does: a new annotation in the pod template."""
    stamp = {"kubectl.kubernetes.io/restartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    client.AppsV1Api(kube_client).patch_namespaced_deployment(
        name, "default", {"spec": {"template": {"metadata": {"annotations": stamp}}}}
    )


@pytest.mark.kubesim("--deployment", "default/web=8:8080", "--nodes", "4")
@pytest.mark.timeout(180)
def test_a_rollout_during_capture_is_followed_without_restarting_an_agent(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    old = kubesim.pods("default", "app=web")
    dump = DumpProcess("deployment/web", kubeconfig=str(kubesim.kubeconfig))
    try:
        dump.wait_for_stderr(r"agents 4/4 · pods 8/8", 60)
        agents = {p.pid for p in kubesim.agent_processes()}
        assert len(agents) == 4
        restart_rollout(kube_client, "web")
        old_names = {p.name for p in old}

        def replaced() -> bool:
            now = kubesim.pods("default", "app=web")
            return len(now) == 8 and all(p.ready and p.name not in old_names for p in now)

        kubesim.wait_for(replaced, 120, "every pod to be replaced")
        new = kubesim.pods("default", "app=web")
        for pod in new:
            dump.wait_for_stderr(rf"\[default/{re.escape(pod.name)}\] Tapped by the agent", 60)
            assert ask(pod, f"/to/{pod.name}") == pod.name
        for pod in new:
            dump.wait_for_stdout(rf"Data: GET /to/{re.escape(pod.name)} HTTP/1.1", 30)
        for pod in old:
            assert re.search(
                rf"\[default/{re.escape(pod.name)}\] Pod .* (going away|deleted)", dump.stderr
            ), dump.stderr
        assert {p.pid for p in kubesim.agent_processes()} == agents
        assert dump.stop(signal.SIGINT) == 0
    finally:
        dump.kill()
    assert "Traceback" not in dump.stderr


@pytest.mark.kubesim("--deployment", "default/web=6:8080", "--nodes", "3")
@pytest.mark.timeout(150)
def test_a_killed_node_agent_is_reported_and_replaced_and_other_nodes_carry_on(
    kubesim: KubeSim,
) -> None:
    pods = kubesim.pods("default", "app=web")
    dump = DumpProcess("deployment/web", kubeconfig=str(kubesim.kubeconfig))
    try:
        dump.wait_for_stderr(r"agents 3/3 · pods 6/6", 60)
        agents = kubesim.agent_processes()
        victim = agents[0]
        node = next(p.node for p in kubesim.pods() if p.name == victim.pod)
        others = {a.pid for a in agents if a.pid != victim.pid}
        os.kill(victim.pid, signal.SIGKILL)
        on_node = [p for p in pods if p.node == node]
        assert on_node
        for pod in on_node:
            dump.wait_for_stderr(
                rf"\[default/{re.escape(pod.name)}\] The agent on node {node} is gone", 60
            )
        dump.wait_for_stderr(rf"Starting a new agent on node {node}", 30)
        for pod in on_node:
            dump.wait_for_stderr(
                rf"\[default/{re.escape(pod.name)}\] Tapped by the agent", 60, count=2
            )
        for pod in pods:
            assert ask(pod, f"/after/{pod.name}") == pod.name
        for pod in pods:
            dump.wait_for_stdout(rf"Data: GET /after/{re.escape(pod.name)} HTTP/1.1", 30)
        assert others <= {a.pid for a in kubesim.agent_processes()}
        assert dump.stop(signal.SIGINT) == 0
    finally:
        dump.kill()
    assert "Traceback" not in dump.stderr
