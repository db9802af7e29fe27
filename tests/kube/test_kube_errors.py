"""What a user meets when the cluster says no: each gets one sentence, and nothing is left."""

from __future__ import annotations

import asyncio
import threading
from functools import partial

import pytest
from kubernetes import client

from tests.kube.dumping import DumpProcess
from tests.kubesim import KubeSim
from tui.sources.kube.agent_spec import AgentSettings
from tui.sources.kube.agents import AgentFailed, agent_failure, start_ephemeral_agent
from tui.sources.kube.cluster import call, connect
from tui.sources.kube.options import PODTAP_AGENT_IMAGE
from tui.sources.kube.portforward import AgentConnector
from tui.sources.stream import StreamEnded

pytestmark = [pytest.mark.root]

ONE_POD = ("--deployment", "default/web=1:8080", "--namespace", "other")
PRIVILEGED_ONLY = {"pod-security.kubernetes.io/enforce": "baseline"}


def failed_dump(sim: KubeSim, *args: str) -> str:
    """Runs a dump that must fail; returns its one line of stderr."""
    dump = DumpProcess("deployment/web", *args, kubeconfig=str(sim.kubeconfig))
    try:
        assert dump.process.wait(60) == 1, dump.stderr
    finally:
        dump.kill()
    lines = dump.stderr.splitlines()
    assert len(lines) == 1, dump.stderr
    assert lines[0].startswith("podtap: ")
    return lines[0].removeprefix("podtap: ")


def no_agents_left(sim: KubeSim, kube_client: client.ApiClient) -> bool:
    selector = "app.kubernetes.io/name=podtap-agent"
    jobs = client.BatchV1Api(kube_client).list_job_for_all_namespaces(label_selector=selector)
    pods = client.CoreV1Api(kube_client).list_pod_for_all_namespaces(label_selector=selector)
    return not jobs.items and not pods.items and not sim.agent_processes()


@pytest.mark.kubesim(*ONE_POD)
@pytest.mark.timeout(60)
def test_a_missing_permission_is_named_before_anything_is_created(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    kubesim.deny("create:jobs")
    assert failed_dump(kubesim) == (
        "Your Kubernetes user may not create jobs (API group batch) in namespace 'default', "
        "which podtap needs; ask for the Role in docs/rbac.md."
    )
    kubesim.allow("create:jobs")
    kubesim.deny("create:pods/portforward")
    assert failed_dump(kubesim) == (
        "Your Kubernetes user may not create pods/portforward in namespace 'default', "
        "which podtap needs; ask for the Role in docs/rbac.md."
    )
    assert no_agents_left(kubesim, kube_client)


@pytest.mark.kubesim(*ONE_POD)
@pytest.mark.timeout(90)
def test_pod_security_is_caught_by_a_dry_run_and_agent_namespace_gets_around_it(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    kubesim.label_namespace("default", PRIVILEGED_ONLY)
    sentence = failed_dump(kubesim)
    assert sentence.startswith(
        "The Pod Security level of namespace 'default' rejects the agent pod (pods "
    )
    assert 'violates PodSecurity "baseline:latest": host namespaces (hostPID=true)' in sentence
    assert sentence.endswith(
        "use --agent-namespace with a namespace labelled "
        "pod-security.kubernetes.io/enforce=privileged, or --ephemeral."
    )
    assert no_agents_left(kubesim, kube_client)

    dump = DumpProcess(
        "deployment/web", "--agent-namespace", "other", kubeconfig=str(kubesim.kubeconfig)
    )
    try:
        dump.wait_for_stderr(r"Listening for traffic", 60)
        (agent,) = kubesim.agent_processes()
        assert agent.namespace == "other"
        assert dump.stop() == 0
    finally:
        dump.kill()
    assert no_agents_left(kubesim, kube_client)


@pytest.mark.kubesim(*ONE_POD)
@pytest.mark.timeout(90)
def test_pod_security_is_also_read_from_the_jobs_events(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    # Without the right to create pods, podtap cannot dry-run one: the Job is created, its
    # pod is refused, and the refusal is read back from the Job's events.
    kubesim.deny("create:pods")
    kubesim.label_namespace("default", PRIVILEGED_ONLY)
    sentence = failed_dump(kubesim)
    assert sentence.startswith("The Pod Security level of namespace 'default' rejects the agent")
    assert "--ephemeral." in sentence
    kubesim.wait_for(lambda: no_agents_left(kubesim, kube_client), timeout=15)


@pytest.mark.kubesim(*ONE_POD)
@pytest.mark.timeout(90)
def test_an_image_that_cannot_be_pulled_is_one_sentence(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    kubesim.fail_image("registry.invalid/podtap-agent:*")
    sentence = failed_dump(kubesim, "--agent-image", "registry.invalid/podtap-agent:9")
    assert sentence.startswith("The agent on node node-")
    assert "failed: the agent image registry.invalid/podtap-agent:9 cannot be pulled (" in sentence
    assert ("ErrImagePull" in sentence) or ("ImagePullBackOff" in sentence)
    assert sentence.endswith(
        "build and load it as docs/kubernetes.md shows, or pass --agent-image."
    )
    assert no_agents_left(kubesim, kube_client)


@pytest.mark.kubesim(*ONE_POD)
@pytest.mark.timeout(60)
def test_an_agent_that_exits_is_reported_with_its_last_words(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    # A port no agent accepts: the real agent starts in the pod, says why not, and exits 2.
    cluster = connect(str(kubesim.kubeconfig), None)
    try:
        (target,) = call(cluster.core.list_namespaced_pod, "default", label_selector="app=web")[
            "items"
        ]
        settings = AgentSettings(
            session="0badc0de", token="t", image=PODTAP_AGENT_IMAGE, namespace=None,
            ports=(70000,),
        )  # fmt: skip
        try:
            agent = start_ephemeral_agent(cluster, settings, target, 30, threading.Event())
        except AgentFailed as failure:  # it exited before its container was seen running
            sentence = str(failure)
        else:  # seen running first: the first connection finds out
            connector = AgentConnector(
                cluster, agent, "t", 30, partial(agent_failure, cluster, settings, agent, target)
            )
            with pytest.raises(StreamEnded) as ended:
                asyncio.run(connector.prime())
            sentence = str(ended.value)
        assert sentence.startswith(
            f"The agent for default/{target['metadata']['name']} failed: the agent exited "
            "with code 2"
        ), sentence
        assert "; it said: podtap agent: Port 70000 is out of range" in sentence
    finally:
        cluster.close()
    kubesim.wait_for(lambda: no_agents_left(kubesim, kube_client), timeout=15)
