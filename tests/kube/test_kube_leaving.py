"""Leaving a node session on the simulated cluster: the API server sees one collection delete
per kind (Jobs, pods, Secrets, ConfigMaps) rather than a delete per agent, or one delete per
object, still all at once, when the Role refuses collection deletes. Nothing is left either way,
not even Jobs whose creation the API server answers only after the first sweep.

A delete per agent after a list cost a round trip per handful of agents: on an API server that
answers slowly, seconds per round at 30 nodes.
"""

from __future__ import annotations

import signal
import time

import pytest
from kubernetes import client

from tests.kube.dumping import DumpProcess
from tests.kube.test_kube_dump import agent_objects, wait_for
from tests.kubesim import KubeSim
from tests.kubesim.apiserver import RequestSeen

pytestmark = [pytest.mark.root]

KINDS = ("jobs", "pods", "secrets", "configmaps")


def stop_dump_and_see_requests(kubesim: KubeSim) -> list[RequestSeen]:
    """Run ``dump`` until every agent taps its pods, stop it with Ctrl+C; the requests the API
    server handled from the Ctrl+C on."""
    dump = DumpProcess("deployment/web", "-p", "8080", kubeconfig=str(kubesim.kubeconfig))
    try:
        dump.wait_for_stderr(r"agents 6/6 · pods 6/6", 90)
        stopping = time.monotonic()
        assert dump.stop(signal.SIGINT, 30) == 0
    finally:
        dump.kill()
    assert "Traceback" not in dump.stderr
    return [r for r in kubesim.call(lambda: list(kubesim.api.requests)) if r.started >= stopping]


def deletes_of(requests: list[RequestSeen], kind: str) -> list[str]:
    """The paths of the DELETEs of ``kind`` in the session's namespace (a collection's path
    ends with the kind, an object's with its name)."""
    return [
        r.path.rsplit(f"/namespaces/default/{kind}", 1)[1]
        for r in requests
        if r.method == "DELETE" and f"/namespaces/default/{kind}" in r.path
    ]


@pytest.mark.kubesim("--deployment", "default/web=6:8080", "--nodes", "6")
@pytest.mark.timeout(150)
def test_leaving_deletes_each_kind_of_object_in_one_request(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    requests = stop_dump_and_see_requests(kubesim)
    for kind in KINDS:
        # One collection delete (no object named); a second sweep only if a call was running.
        assert deletes_of(requests, kind) == [""], (kind, requests)
    listed = [r for r in requests if r.method == "GET" and r.path.endswith(("/jobs", "/pods"))]
    assert not listed, "the deletes waited for a listing"
    # A Job's pods go in the background: one its Job made while the deletes were on their way
    # is the garbage collector's, a moment later.
    wait_for("no agent object left", lambda: not agent_objects(kube_client), 15)
    wait_for("every agent process to end", lambda: not kubesim.agent_processes(), 30)


@pytest.mark.kubesim(
    "--deployment", "default/web=6:8080", "--nodes", "6",
    "--deny", "deletecollection:jobs", "--deny", "deletecollection:pods",
)  # fmt: skip
@pytest.mark.timeout(150)
def test_refused_collection_deletes_become_one_delete_per_job_and_pod(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    requests = stop_dump_and_see_requests(kubesim)
    for kind in ("jobs", "pods"):
        named = [path for path in deletes_of(requests, kind) if path]
        assert len(named) == 6, (kind, requests)
    for kind in ("secrets", "configmaps"):
        assert deletes_of(requests, kind) == [""]
    assert not agent_objects(kube_client)
    wait_for("every agent process to end", lambda: not kubesim.agent_processes(), 30)


@pytest.mark.kubesim("--deployment", "default/web=6:8080", "--nodes", "6")
@pytest.mark.timeout(150)
def test_jobs_created_after_the_first_sweep_are_deleted_before_podtap_exits(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    # Ctrl+C while the API server sits on the Jobs' creation: the first sweep finds nothing,
    # the Jobs (and their Secrets) land after it, and only a second sweep can delete them. An
    # agent left so would run until its first-client timeout, long after this test's wait.
    kubesim.hold("create:jobs", 4.0)
    dump = DumpProcess("deployment/web", "-p", "8080", kubeconfig=str(kubesim.kubeconfig))
    try:
        # The code ConfigMap is made just before the Jobs: they are on their way a moment later.
        kubesim.wait_for(lambda: any(r.method == "POST" and r.path.endswith("/configmaps")
                                     for r in kubesim.call(lambda: list(kubesim.api.requests))),
                         60, "the code ConfigMap")  # fmt: skip
        time.sleep(1.0)
        stopping = time.monotonic()
        assert dump.stop(signal.SIGINT, 30) == 0
    finally:
        dump.kill()
    assert "Traceback" not in dump.stderr
    seen = kubesim.call(lambda: list(kubesim.api.requests))
    creations = [r for r in seen if r.method == "POST" and r.path.endswith("/jobs")]
    assert any(r.started < stopping < r.ended for r in creations), "no Job was held at Ctrl+C"
    requests = [r for r in seen if r.started >= stopping]
    assert len(deletes_of(requests, "jobs")) == 2, "one sweep before the Jobs landed, one after"
    # Pods the Job controller started in between go with their Jobs.
    wait_for("every agent object to be deleted", lambda: not agent_objects(kube_client), 10)
    wait_for("every agent process to end", lambda: not kubesim.agent_processes(), 30)
