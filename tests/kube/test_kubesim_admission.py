"""What the simulated API server refuses, as the official client sees it: RBAC denials and
SelfSubjectAccessReview, Pod Security admission (and server-side dry run), image pulls that
fail."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.stream import portforward

from tests.kubesim import KubeSim
from tests.kubesim.clients import authorization_api, batch_api, core_api

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]

AGENT_CAPABILITIES = ["NET_RAW", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.1)
    return result


def agent_pod_spec(**security: Any) -> dict[str, Any]:
    return {
        "hostPID": True,
        "restartPolicy": "Never",
        "tolerations": [{"operator": "Exists"}],
        "containers": [
            {
                "name": "agent",
                "image": "ghcr.io/podtap/agent:0.1.0",
                "command": ["sleep", "30"],
                "securityContext": security or {"capabilities": {"add": AGENT_CAPABILITIES}},
            }
        ],
    }


def status_of(error: client.ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(str(error.body))
    return body


def access(api: Any, verb: str, resource: str, group: str = "", subresource: str = "") -> bool:
    review = api.create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {
                    "namespace": "default",
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "subresource": subresource,
                }
            }
        }
    )
    return bool(review.status.allowed)


@pytest.mark.kubesim("--pod", "default/web:8080", "--deny", "create:jobs", "--nodes", "1")
def test_rbac_denial_is_a_403_status_and_access_reviews_agree(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    batch, auth = batch_api(kube_client), authorization_api(kube_client)
    with pytest.raises(client.ApiException) as denied:
        batch.create_namespaced_job(
            "default", {"metadata": {"name": "x"}, "spec": {"template": {"spec": agent_pod_spec()}}}
        )
    assert denied.value.status == 403
    status = status_of(denied.value)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'jobs.batch is forbidden: User "podtap-test" cannot create resource "jobs" in API '
        'group "batch" in the namespace "default"'
    )
    assert status["details"] == {"group": "batch", "kind": "jobs"}
    assert not access(auth, "create", "jobs", "batch")
    assert access(auth, "list", "pods")
    assert access(auth, "create", "pods", subresource="portforward")

    kubesim.deny("create:pods/portforward")
    assert not access(auth, "create", "pods", subresource="portforward")
    core = core_api(kube_client)
    with pytest.raises(client.ApiException) as no_forward:
        portforward(core.connect_get_namespaced_pod_portforward, "web", "default", ports="8080")
    assert "403" in str(no_forward.value)
    kubesim.allow("create:jobs")
    assert access(auth, "create", "jobs", "batch")


@pytest.mark.kubesim(
    "--pod", "locked/web:8080", "--pod-security", "locked=baseline", "--nodes", "1"
)
def test_pod_security_rejects_the_agent_pod_and_dry_run_creates_nothing(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    core = core_api(kube_client)
    pod = {"metadata": {"name": "agent-check"}, "spec": agent_pod_spec()}
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod("locked", pod, dry_run="All")
    assert refused.value.status == 403
    assert status_of(refused.value)["message"] == (
        'pods "agent-check" is forbidden: violates PodSecurity "baseline:latest": host '
        'namespaces (hostPID=true), non-default capabilities (container "agent" must not '
        'include "NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE" in '
        "securityContext.capabilities.add)"
    )
    privileged = {"metadata": {"name": "p"}, "spec": agent_pod_spec(privileged=True)}
    with pytest.raises(client.ApiException) as refused_privileged:
        core.create_namespaced_pod("locked", privileged)
    assert (
        'privileged (container "agent" must not set securityContext.privileged=true)'
        in (status_of(refused_privileged.value)["message"])
    )

    # The same pod passes in a namespace without enforcement; a dry run stores nothing.
    checked = core.create_namespaced_pod("default", pod, dry_run="All")
    assert checked.metadata.name == "agent-check"
    assert core.list_namespaced_pod("default").items == []

    # A Job is admitted, its pod is not: the Job controller reports it as an Event.
    batch = batch_api(kube_client)
    batch.create_namespaced_job(
        "locked",
        {
            "metadata": {"name": "agent"},
            "spec": {"backoffLimit": 0, "template": {"spec": agent_pod_spec()}},
        },
    )
    events = eventually(
        lambda: (
            core.list_namespaced_event("locked", field_selector="involvedObject.name=agent").items
        )
    )
    assert events[0].reason == "FailedCreate"
    assert events[0].type == "Warning"
    assert events[0].involved_object.kind == "Job"
    assert events[0].message.startswith('Error creating: pods "agent-')
    assert 'violates PodSecurity "baseline:latest": host namespaces (hostPID=true)' in (
        events[0].message
    )
    assert core.list_namespaced_pod("locked", label_selector="job-name=agent").items == []

    # Ephemeral containers go through the same admission as pods.
    ephemeral = {
        "name": "podtap-s1",
        "image": "agent",
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
    }
    with pytest.raises(client.ApiException) as no_ephemeral:
        core.patch_namespaced_pod_ephemeralcontainers(
            "web", "locked", {"spec": {"ephemeralContainers": [ephemeral]}}
        )
    assert no_ephemeral.value.status == 403
    assert status_of(no_ephemeral.value)["message"] == (
        'pods "web" is forbidden: violates PodSecurity "baseline:latest": non-default '
        'capabilities (container "podtap-s1" must not include "NET_ADMIN" in '
        "securityContext.capabilities.add)"
    )

    # Relabelling the namespace privileged lets the Job's pod through.
    core.patch_namespace(
        "locked", {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}
    )
    eventually(lambda: core.list_namespaced_pod("locked", label_selector="job-name=agent").items)


@pytest.mark.kubesim("--nodes", "1", "--fail-image", "broken")
def test_image_pull_failure_keeps_the_pod_pending_with_backoff(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    core = core_api(kube_client)
    image = "ghcr.io/podtap/broken:0.1.0"
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "puller"},
            "spec": {"containers": [{"name": "agent", "image": image, "command": ["sleep", "30"]}]},
        },
    )

    def waiting(reason: str) -> Any:
        pod = core.read_namespaced_pod("puller", "default")
        statuses = pod.status.container_statuses or []
        if statuses and statuses[0].state.waiting and statuses[0].state.waiting.reason == reason:
            return pod
        return None

    pulled = eventually(lambda: waiting("ErrImagePull"))
    assert pulled.status.phase == "Pending"
    backing_off = eventually(lambda: waiting("ImagePullBackOff"))
    assert backing_off.status.container_statuses[0].state.waiting.message == (
        f'Back-off pulling image "{image}"'
    )
    assert backing_off.status.phase == "Pending"
    assert not kubesim.processes()

    kubesim.heal_image("broken")
    eventually(lambda: core.read_namespaced_pod("puller", "default").status.phase == "Running")


@pytest.mark.kubesim("--nodes", "1")
def test_a_pod_bound_to_a_missing_node_is_unschedulable(
    kubesim: KubeSim, kube_client: client.ApiClient
) -> None:
    core = core_api(kube_client)
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "lost"},
            "spec": {"nodeName": "node-9", "containers": [{"name": "c", "image": "x"}]},
        },
    )

    def unschedulable() -> bool:
        conditions = core.read_namespaced_pod("lost", "default").status.conditions or []
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conditions)

    eventually(unschedulable)
    assert core.read_namespaced_pod("lost", "default").status.phase == "Pending"
    core.delete_namespaced_pod("lost", "default")
    eventually(lambda: not core.list_namespaced_pod("default").items)
