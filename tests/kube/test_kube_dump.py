"""`podtap dump` on a simulated cluster: every replica, a scale-up while running, cleanup.

Real processes throughout: the simulator's pods are network namespaces running HTTP servers,
podtap's agents run as Job pods and are reached through the API server's port-forward.
"""

from __future__ import annotations

import signal
import time
import urllib.request

import pytest
from kubernetes import client

from tests.kube.dumping import DumpProcess, blocks_by_source
from tests.kubesim import KubeSim, PodInfo

pytestmark = [pytest.mark.root]

AGENT_SELECTOR = "app.kubernetes.io/name=podtap-agent"


def get(ip: str, path: str) -> str:
    with urllib.request.urlopen(f"http://{ip}:8080{path}", timeout=5) as response:
        return str(response.headers["x-pod"])


def agent_objects(kube_client: client.ApiClient) -> list[str]:
    jobs = (
        client.BatchV1Api(kube_client)
        .list_job_for_all_namespaces(label_selector=AGENT_SELECTOR)
        .items
    )
    pods = (
        client.CoreV1Api(kube_client)
        .list_pod_for_all_namespaces(label_selector=AGENT_SELECTOR)
        .items
    )
    return (
        [f"job/{j.metadata.name}" for j in jobs]
        + [f"pod/{p.metadata.name}" for p in pods]
        + token_secrets(kube_client)
    )


def token_secrets(kube_client: client.ApiClient) -> list[str]:
    """The session's token Secrets and its ConfigMap of agent code."""
    core = client.CoreV1Api(kube_client)
    secrets = core.list_secret_for_all_namespaces(label_selector=AGENT_SELECTOR).items
    configmaps = core.list_config_map_for_all_namespaces(label_selector=AGENT_SELECTOR).items
    return [f"secret/{s.metadata.name}" for s in secrets] + [
        f"configmap/{c.metadata.name}" for c in configmaps
    ]


def wait_for(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def wait_until_tapped(dump: DumpProcess, pods: list[PodInfo], timeout: float = 60) -> None:
    """Until a request to each pod shows up under its name: its agent's stream is live."""
    deadline = time.monotonic() + timeout
    waiting = {p.name: p for p in pods}
    attempt = 0
    while waiting:
        dump.wait_for_stderr(r"Listening for traffic", timeout)
        for name, pod in list(waiting.items()):
            if f"## [default/{name}] Connection ID" in dump.stdout:
                del waiting[name]
            else:
                get(pod.ip, f"/warm-up/{attempt}")
        attempt += 1
        if time.monotonic() > deadline:
            raise AssertionError(f"no traffic seen from {sorted(waiting)}:\n{dump.stderr}")
        time.sleep(0.5)


def requests_to(seen: dict[str, list[str]], source: str) -> list[str]:
    return [line for line in seen.get(source, []) if "/warm-up/" not in line]


@pytest.mark.timeout(120)
def test_every_replica_is_tapped_attributed_to_its_pod_and_a_new_replica_joins(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    pods = kubesim.pods("default", "app=web")
    assert len(pods) == 3
    assert len({p.node for p in pods}) == 2
    dump = DumpProcess("deployment/web", "-p", "8080", kubeconfig=str(kubesim.kubeconfig))
    try:
        wait_until_tapped(dump, pods)
        for pod in pods:
            assert get(pod.ip, f"/to/{pod.name}") == pod.name
        for pod in pods:
            dump.wait_for_stdout(rf"Data: GET /to/{pod.name} HTTP/1.1")

        kubesim.scale("default", "web", 4)
        dump.wait_for_stderr(r"is ready: tapping it too", 60)
        (new,) = [
            p
            for p in kubesim.pods("default", "app=web")
            if p.name not in {old.name for old in pods}
        ]
        wait_until_tapped(dump, [new])
        assert get(new.ip, f"/to/{new.name}") == new.name
        dump.wait_for_stdout(rf"Data: GET /to/{new.name} HTTP/1.1")

        # Scaled down: the pods that go are marked gone; each node keeps its one agent, the
        # same process as before (nothing restarted needlessly).
        agents_before = {p.pid for p in kubesim.agent_processes()}
        assert len(agents_before) == 2
        kubesim.scale("default", "web", 2)
        dump.wait_for_stderr(r"is going away|was deleted", 60, count=2)
        kubesim.wait_for(lambda: len(kubesim.pods("default", "app=web")) == 2, timeout=30)
        dump.wait_for_stderr(r"pods 2/2", 30)
        assert {p.pid for p in kubesim.agent_processes()} == agents_before

        assert dump.stop(signal.SIGINT) == 0
    finally:
        dump.kill()
    seen = blocks_by_source(dump.stdout)
    for pod in [*pods, new]:
        assert requests_to(seen, f"default/{pod.name}") == [f"GET /to/{pod.name} HTTP/1.1"]
    assert "Traceback" not in dump.stderr
    wait_for("every agent process to end", lambda: not kubesim.agent_processes(), 30)
    wait_for("every agent Job and pod to be deleted", lambda: not agent_objects(kube_client), 30)


@pytest.mark.kubesim("--deployment", "default/web=1:8080")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
@pytest.mark.timeout(90)
def test_a_signal_ends_dump_and_removes_its_agents(
    kubesim: KubeSim, kube_client: client.ApiClient, sig: signal.Signals
) -> None:
    dump = DumpProcess("deployment/web", kubeconfig=str(kubesim.kubeconfig))
    try:
        wait_until_tapped(dump, kubesim.pods("default", "app=web"))
        assert len(kubesim.agent_processes()) == 1
        assert agent_objects(kube_client)
        assert dump.stop(sig) == 0
    finally:
        dump.kill()
    assert "Traceback" not in dump.stderr
    # Deleted by podtap itself before it exited, not by a timeout.
    assert not agent_objects(kube_client)
    wait_for("the agent process to end", lambda: not kubesim.agent_processes(), 15)


@pytest.mark.kubesim("--deployment", "default/web=2:8080", "--nodes", "2")
@pytest.mark.timeout(120)
def test_agents_of_a_killed_podtap_exit_after_their_idle_timeout(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    dump = DumpProcess(
        "deployment/web", "--agent-idle-timeout", "2", kubeconfig=str(kubesim.kubeconfig)
    )
    try:
        wait_until_tapped(dump, kubesim.pods("default", "app=web"))
        assert len(kubesim.agent_processes()) == 2
    finally:
        dump.kill()  # SIGKILL: no cleanup code runs in podtap
    started = time.monotonic()
    wait_for("the agents to exit by themselves", lambda: not kubesim.agent_processes(), 30)
    assert time.monotonic() - started < 20
    # Their Jobs go after ttlSecondsAfterFinished, and the token Secrets with them.
    wait_for(
        "the agent Jobs and Secrets to be deleted",
        lambda: not agent_objects(kube_client) and not token_secrets(kube_client),
        60,
    )
