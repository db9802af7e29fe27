"""`podtap clean` removes what a killed podtap left behind, in one namespace or in all."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from kubernetes import client

from tests.kube.dumping import ROOT, DumpProcess
from tests.kubesim import KubeSim

pytestmark = [pytest.mark.root]

AGENTS = "app.kubernetes.io/name=podtap-agent"


def agent_jobs(kube_client: client.ApiClient) -> list[tuple[str, str]]:
    jobs = client.BatchV1Api(kube_client).list_job_for_all_namespaces(label_selector=AGENTS)
    return sorted((j.metadata.namespace, j.metadata.name) for j in jobs.items)


def agent_pods(kube_client: client.ApiClient) -> list[tuple[str, str]]:
    pods = client.CoreV1Api(kube_client).list_pod_for_all_namespaces(label_selector=AGENTS)
    return sorted((p.metadata.namespace, p.metadata.name) for p in pods.items)


def clean(sim: KubeSim, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", "clean", "--kubeconfig", str(sim.kubeconfig), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def leave_agents_behind(sim: KubeSim, *args: str) -> None:
    """A dump killed with SIGKILL: its agents stay (for their idle timeout, here long)."""
    dump = DumpProcess(
        "deployment/web", "--agent-idle-timeout", "600", *args, kubeconfig=str(sim.kubeconfig)
    )
    try:
        dump.wait_for_stderr(r"Listening for traffic", 60)
    finally:
        dump.kill()


@pytest.mark.kubesim("--deployment", "default/web=1:8080", "--namespace", "other")
@pytest.mark.timeout(120)
def test_clean_deletes_leftover_agents_by_namespace_then_everywhere(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    assert "No podtap agents in namespace 'default'." in clean(kubesim).stderr

    leave_agents_behind(kubesim)
    leave_agents_behind(kubesim, "--agent-namespace", "other")
    jobs = agent_jobs(kube_client)
    assert [ns for ns, _ in jobs] == ["default", "other"]
    assert len(kubesim.agent_processes()) == 2

    dry = clean(kubesim, "-A", "--dry-run")
    assert dry.returncode == 0
    assert "would delete job default/" in dry.stdout
    assert agent_jobs(kube_client) == jobs

    done = clean(kubesim, "-n", "other")
    assert done.returncode == 0, done.stderr
    assert f"deleting job other/{jobs[1][1]}" in done.stdout
    assert [ns for ns, _ in agent_jobs(kube_client)] == ["default"]

    done = clean(kubesim, "-A")
    assert done.returncode == 0, done.stderr
    assert f"deleting job default/{jobs[0][1]}" in done.stdout
    assert agent_jobs(kube_client) == []
    kubesim.wait_for(
        lambda: not agent_pods(kube_client) and not kubesim.agent_processes(), timeout=30
    )
    # The sessions' token Secrets and code ConfigMaps went with their Jobs.
    kubesim.wait_for(lambda: not session_data(kube_client), timeout=30)


def session_data(kube_client: client.ApiClient) -> list[str]:
    core = client.CoreV1Api(kube_client)
    secrets = core.list_secret_for_all_namespaces(label_selector=AGENTS).items
    configmaps = core.list_config_map_for_all_namespaces(label_selector=AGENTS).items
    return [s.metadata.name for s in secrets] + [c.metadata.name for c in configmaps]


@pytest.mark.kubesim("--deployment", "default/web=1:8080")
@pytest.mark.timeout(60)
def test_clean_without_permission_is_one_sentence(kubesim: KubeSim) -> None:
    kubesim.deny("list:jobs")
    result = clean(kubesim, "-A")
    assert result.returncode == 1
    assert result.stderr.startswith("podtap: Could not clean all namespaces: ")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.kubesim("--deployment", "default/web=1:8080")
@pytest.mark.timeout(60)
def test_clean_deletes_a_code_configmap_no_job_owns(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    # What a podtap killed between making its ConfigMap and its first Job leaves.
    labels = {"app.kubernetes.io/name": "podtap-agent", "podtap.dev/session": "dead0000"}
    client.CoreV1Api(kube_client).create_namespaced_config_map(
        "default", {"metadata": {"name": "podtap-dead0000-agent", "labels": labels}}
    )
    done = clean(kubesim)
    assert done.returncode == 0, done.stderr
    assert "deleting configmap default/podtap-dead0000-agent" in done.stdout
    assert session_data(kube_client) == []


@pytest.mark.kubesim("--deployment", "default/web=1:8080")
@pytest.mark.timeout(120)
def test_clean_sends_every_delete_before_the_first_is_answered(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    # One after the other, a few hundred leftover agents took one round trip each.
    leave_agents_behind(kubesim)
    for rule in ("delete:jobs", "delete:pods", "delete:secrets", "delete:configmaps"):
        kubesim.hold(rule, 1.0)
    began = time.monotonic()
    done = clean(kubesim)
    assert done.returncode == 0, done.stderr
    requests = kubesim.call(lambda: list(kubesim.api.requests))
    deletes = [r for r in requests if r.method == "DELETE" and r.started >= began]
    kinds = {kind for r in deletes for kind in ("/jobs/", "/pods/") if kind in r.path}
    assert kinds == {"/jobs/", "/pods/"}, deletes
    assert max(r.started for r in deletes) < min(r.ended for r in deletes), deletes
    assert agent_jobs(kube_client) == []
