"""Every kind of target resolves to the right pods of a simulated cluster; container choice and
default ports as the agent receives them."""

from __future__ import annotations

import re

import pytest
from kubernetes import client

from agent.errors import UserError
from tests.kube.dumping import DumpProcess
from tests.kubesim import KubeSim
from tui.sources.kube.cluster import connect
from tui.sources.kube.resolve import build_query, list_pods
from tui.targets import KubeTarget, parse_target

pytestmark = [pytest.mark.root]

EVERY_KIND = (
    "--nodes",
    "2",
    "--deployment",
    "default/web=2:8080",
    "--statefulset",
    "default/db=2:5432",
    "--daemonset",
    "default/proxy:9000",
    "--job",
    "default/migrate:7000",
    "--cronjob",
    "default/report=2:7100",
    "--service",
    "default/web",
    "--pod",
    "default/solo:8000",
    "--pod",
    "other/far:8000",
)


def resolve(
    sim: KubeSim, target: str, namespace: str | None = None, context: str | None = None
) -> list[str]:
    cluster = connect(str(sim.kubeconfig), context)
    try:
        parsed = parse_target(target)
        assert isinstance(parsed, KubeTarget)
        query = build_query(cluster, parsed, namespace or cluster.namespace)
        pods, _ = list_pods(cluster, query)
        return [pod["metadata"]["name"] for pod in pods]
    finally:
        cluster.close()


def names(sim: KubeSim, namespace: str, selector: str) -> list[str]:
    return sorted(p.name for p in sim.pods(namespace, selector))


@pytest.mark.kubesim(*EVERY_KIND)
@pytest.mark.timeout(90)
def test_every_kind_of_target_resolves_to_its_pods(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    web = names(kubesim, "default", "app=web")
    assert len(web) == 2
    assert resolve(kubesim, "deployment/web") == web
    assert resolve(kubesim, "deploy/web") == web
    assert resolve(kubesim, "service/web") == web
    assert resolve(kubesim, "label/app=web") == web
    (replicaset,) = (
        client.AppsV1Api(kube_client)
        .list_namespaced_replica_set("default", label_selector="app=web")
        .items
    )
    assert resolve(kubesim, f"replicaset/{replicaset.metadata.name}") == web

    db = names(kubesim, "default", "app=db")
    assert db == ["db-0", "db-1"]
    assert resolve(kubesim, "statefulset/db") == db

    proxies = kubesim.pods("default", "app=proxy")
    assert sorted(p.node for p in proxies) == ["node-1", "node-2"]
    assert resolve(kubesim, "daemonset/proxy") == sorted(p.name for p in proxies)

    assert resolve(kubesim, "job/migrate") == names(kubesim, "default", "app=migrate")

    # A CronJob means the pods of its newest Job, not those of the older ones.
    jobs = (
        client.BatchV1Api(kube_client)
        .list_namespaced_job("default", label_selector="app=report")
        .items
    )
    assert len(jobs) == 2
    newest = max(jobs, key=lambda j: (j.metadata.creation_timestamp, j.metadata.name))
    newest_pods = names(
        kubesim, "default", f"batch.kubernetes.io/controller-uid={newest.metadata.uid}"
    )
    assert len(newest_pods) == 1
    assert resolve(kubesim, "cronjob/report") == newest_pods

    assert resolve(kubesim, "pod/solo") == ["solo"]
    # -n and the context's namespace, as kubectl reads them.
    assert resolve(kubesim, "pod/far", namespace="other") == ["far"]
    assert resolve(kubesim, "pod/far", context="kubesim-other") == ["far"]


@pytest.mark.kubesim("--deployment", "default/web=1:8080")
@pytest.mark.timeout(60)
def test_missing_targets_are_one_sentence(kubesim: KubeSim) -> None:
    missing = r"^There is no deployment 'nope' in namespace 'default'\.$"
    with pytest.raises(UserError, match=missing):
        resolve(kubesim, "deployment/nope")
    with pytest.raises(UserError, match=r"^There is no pod 'web' in namespace 'other'\.$"):
        resolve(kubesim, "pod/web", namespace="other")
    with pytest.raises(UserError, match=r"no context 'prod'"):
        resolve(kubesim, "deployment/web", context="prod")


@pytest.mark.kubesim("--deployment", "default/web=1:8080")
@pytest.mark.timeout(60)
def test_a_target_without_ready_pods_says_so(kubesim: KubeSim) -> None:
    kubesim.scale("default", "web", 0)
    kubesim.wait_for(lambda: not kubesim.pods("default", "app=web"), timeout=30)
    dump = DumpProcess("deployment/web", kubeconfig=str(kubesim.kubeconfig))
    assert dump.process.wait(30) == 1
    assert dump.stderr.strip() == (
        "podtap: deployment/web has no pods in namespace 'default'; scale it up or check the "
        "name and namespace."
    )


def agent_argv(sim: KubeSim) -> list[str]:
    (agent,) = sim.agent_processes()
    return agent.argv


def tapped_container(kube_client: client.ApiClient, argv: list[str]) -> str:
    """The container id the node agent says it tapped (its log), once."""
    core = client.CoreV1Api(kube_client)
    (agent,) = core.list_namespaced_pod(
        "default", label_selector="app.kubernetes.io/name=podtap-agent"
    ).items
    log = core.read_namespaced_pod_log(agent.metadata.name, "default", container="agent")
    (tapped,) = re.findall(r"tapping default/\S+ \(container (\S+)\)", log)
    assert argv[argv.index("--node") + 1] == agent.spec.node_name
    return str(tapped)


def container_id_of(sim: KubeSim, kube_client: client.ApiClient, container: str) -> str:
    (pod,) = (
        client.CoreV1Api(kube_client).list_namespaced_pod("default", label_selector="app=web").items
    )
    (status,) = [s for s in pod.status.container_statuses if s.name == container]
    return str(status.container_id)


@pytest.mark.kubesim("--deployment", "default/web=1:8080", "--sidecar", "istio-proxy")
@pytest.mark.timeout(90)
def test_the_sidecar_is_skipped_with_a_note_and_ports_come_from_the_container(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    dump = DumpProcess("deployment/web", kubeconfig=str(kubesim.kubeconfig))
    try:
        dump.wait_for_stderr(r"Listening for traffic", 60)
        dump.wait_for_stderr(r"pods 1/1", 30)
        argv = agent_argv(kubesim)
        tapped = tapped_container(kube_client, argv)
    finally:
        dump.stop()
        dump.kill()
    assert "podtap: Tapping container 'web' of web-" in dump.stderr
    assert (
        "(the first that is not a known sidecar); name another with /container/NAME." in dump.stderr
    )
    assert tapped == container_id_of(kubesim, kube_client, "web")
    ports = [argv[i + 1] for i, arg in enumerate(argv) if arg in ("-p", "--port")]
    assert ports == ["8080"]


@pytest.mark.kubesim("--deployment", "default/web=1:8080", "--sidecar", "istio-proxy")
@pytest.mark.timeout(90)
def test_a_named_container_is_tapped_without_a_note(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    dump = DumpProcess(
        "deployment/web/container/istio-proxy", "-p", "15001", kubeconfig=str(kubesim.kubeconfig)
    )
    try:
        dump.wait_for_stderr(r"Listening for traffic", 60)
        dump.wait_for_stderr(r"pods 1/1", 30)
        argv = agent_argv(kubesim)
        tapped = tapped_container(kube_client, argv)
    finally:
        dump.stop()
        dump.kill()
    assert "Tapping container" not in dump.stderr
    assert tapped == container_id_of(kubesim, kube_client, "istio-proxy")


@pytest.mark.kubesim("--deployment", "default/web=1:8080", "--sidecar", "istio-proxy")
@pytest.mark.timeout(60)
def test_a_container_without_ports_needs_dash_p(kubesim: KubeSim) -> None:
    dump = DumpProcess("deployment/web/container/istio-proxy", kubeconfig=str(kubesim.kubeconfig))
    assert dump.process.wait(30) == 1
    assert dump.stderr.startswith("podtap: Container 'istio-proxy' of pod web-")
    assert dump.stderr.strip().endswith(
        "declares no containerPorts; say which port to watch with -p PORT."
    )
    assert not kubesim.agent_processes()
