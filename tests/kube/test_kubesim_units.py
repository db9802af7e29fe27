"""The simulator's pure parts: selectors, patch formats, Pod Security messages, RBAC wording and
the store's resourceVersion and watch semantics. No root needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.kubesim.admission import Rbac, Request, pod_security_violation
from tests.kubesim.apiserver import ApiServer
from tests.kubesim.cluster import Cluster
from tests.kubesim.controllers.workloads import rollout_targets
from tests.kubesim.errors import ApiError
from tests.kubesim.patching import apply_patch
from tests.kubesim.resources import POD
from tests.kubesim.selectors import field_selector, label_selector, selector_to_string
from tests.kubesim.store import HISTORY_LENGTH, Store

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {}, True),
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "api"}, False),
        ("app!=web", {}, True),
        ("app in (web, api),tier", {"app": "api", "tier": "x"}, True),
        ("app in (web, api),tier", {"app": "api"}, False),
        ("app notin (web)", {"app": "web"}, False),
        ("!canary", {"canary": "1"}, False),
        ("app=web,pod-template-hash=abc", {"app": "web", "pod-template-hash": "abc"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert label_selector(selector)(labels) is expected


def test_a_malformed_label_selector_is_a_bad_request() -> None:
    with pytest.raises(ApiError) as bad:
        label_selector("app in (web")({})
    assert bad.value.code == 400


def test_field_selectors_follow_dotted_paths() -> None:
    event = {"involvedObject": {"name": "job-1", "kind": "Job"}, "reason": "FailedCreate"}
    assert field_selector("involvedObject.name=job-1,reason=FailedCreate")(event)
    assert not field_selector("involvedObject.kind!=Job")(event)
    assert field_selector("spec.nodeName=")({"spec": {}})


def test_scale_selector_string() -> None:
    selector = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [{"key": "t", "operator": "In", "values": ["y", "x"]}],
    }
    assert selector_to_string(selector) == "a=1,b=2,t in (x,y)"


def test_strategic_merge_merges_containers_by_name_and_merge_patch_replaces_lists() -> None:
    pod = {
        "spec": {
            "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}],
            "tolerations": [{"key": "x"}],
        }
    }
    patch = {"spec": {"containers": [{"name": "b", "image": "2"}], "tolerations": []}}
    merged = apply_patch(pod, "application/strategic-merge-patch+json", patch)
    assert merged["spec"]["containers"] == [
        {"name": "a", "image": "1"},
        {"name": "b", "image": "2"},
    ]
    assert merged["spec"]["tolerations"] == []
    replaced = apply_patch(pod, "application/merge-patch+json", patch)
    assert replaced["spec"]["containers"] == [{"name": "b", "image": "2"}]
    removed = apply_patch(pod, "application/merge-patch+json", {"spec": {"tolerations": None}})
    assert "tolerations" not in removed["spec"]


def test_json_patch_operations() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1, "items": [1, 2]}}
    patched = apply_patch(
        doc,
        "application/json-patch+json",
        [
            {"op": "replace", "path": "/spec/replicas", "value": 4},
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "add", "path": "/spec/items/-", "value": 3},
            {"op": "remove", "path": "/metadata/labels/a"},
        ],
    )
    assert patched == {
        "metadata": {"labels": {"b/c": "2"}},
        "spec": {"replicas": 4, "items": [1, 2, 3]},
    }
    with pytest.raises(ApiError) as failed:
        apply_patch(
            doc,
            "application/json-patch+json",
            [{"op": "test", "path": "/spec/replicas", "value": 9}],
        )
    assert failed.value.code == 422
    with pytest.raises(ApiError) as unsupported:
        apply_patch(doc, "application/apply-patch+yaml", {})
    assert unsupported.value.code == 415


def _agent_pod(**spec: object) -> dict[str, object]:
    return {
        "metadata": {"name": "a"},
        "spec": {
            "containers": [
                {
                    "name": "agent",
                    "securityContext": {"capabilities": {"add": ["NET_RAW", "CHOWN"]}},
                }
            ],
            **spec,
        },
    }


def test_pod_security_levels() -> None:
    baseline = {"pod-security.kubernetes.io/enforce": "baseline"}
    assert pod_security_violation({}, _agent_pod(hostPID=True)) is None
    assert pod_security_violation(baseline, _agent_pod(hostPID=True, hostNetwork=True)) == (
        'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true, '
        'hostPID=true), non-default capabilities (container "agent" must not include '
        '"NET_RAW" in securityContext.capabilities.add)'
    )
    harmless = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    assert pod_security_violation(baseline, harmless) is None
    restricted = pod_security_violation(
        {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "v1.30",
        },
        harmless,
    )
    assert restricted is not None
    assert restricted.startswith(
        'violates PodSecurity "restricted:v1.30": '
        'allowPrivilegeEscalation != false (container "c" must set '
        "securityContext.allowPrivilegeEscalation=false)"
    )
    assert 'must set securityContext.capabilities.drop=["ALL"]' in restricted


def test_rbac_wording_for_namespaced_cluster_and_named_requests() -> None:
    rbac = Rbac(user="me")
    for rule in ("list:nodes", "create:pods/portforward", "delete:jobs"):
        rbac.deny(rule)
    with pytest.raises(ApiError) as nodes:
        rbac.check(Request("list", "", "nodes"))
    assert nodes.value.message == (
        'nodes is forbidden: User "me" cannot list resource "nodes" '
        'in API group "" at the cluster scope'
    )
    with pytest.raises(ApiError) as forward:
        rbac.check(Request("create", "", "pods", "portforward", "ns", "web-1"))
    assert forward.value.message == (
        'pods "web-1" is forbidden: User "me" cannot create resource "pods/portforward" in '
        'API group "" in the namespace "ns"'
    )
    assert rbac.allows(Request("create", "", "pods", "", "ns"))
    assert not rbac.allows(Request("delete", "batch", "jobs", "", "ns", "j"))
    rbac.allow("delete:jobs")
    assert rbac.allows(Request("delete", "batch", "jobs", "", "ns", "j"))


def _pod(name: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "default", "labels": labels or {}}, "spec": {}}


async def test_store_versions_and_watch_replay() -> None:
    store = Store()
    first = store.create(POD, _pod("a", {"app": "web"}))
    version = int(first["metadata"]["resourceVersion"])
    with pytest.raises(ApiError) as exists:
        store.create(POD, _pod("a"))
    assert exists.value.code == 409
    store.create(POD, _pod("b", {"app": "api"}))
    changed = store.require(POD, "default", "a")
    changed["metadata"]["labels"]["v"] = "2"
    updated = store.update(POD, changed)
    assert int(updated["metadata"]["resourceVersion"]) > version
    assert updated["metadata"]["generation"] == 1  # metadata changes keep the generation
    store.remove(POD, "default", "b")

    replay = store.watch(POD, "default", lambda o: True, since=version)
    seen = [replay.queue.get_nowait() for _ in range(replay.queue.qsize())]
    assert [(c.type, c.object["metadata"]["name"]) for c in seen if c is not None] == [
        ("ADDED", "b"),
        ("MODIFIED", "a"),
        ("DELETED", "b"),
    ]
    fresh = store.watch(POD, None, lambda o: o["metadata"]["labels"].get("app") == "web", None)
    opening = fresh.queue.get_nowait()
    assert opening is not None
    assert opening.type == "ADDED"
    store.create(POD, _pod("c", {"app": "web"}))
    change = await asyncio.wait_for(fresh.queue.get(), 1)
    assert change is not None
    assert change.object["metadata"]["name"] == "c"


def test_a_watch_from_a_compacted_version_is_gone() -> None:
    store = Store()
    store.create(POD, _pod("a"))
    for index in range(HISTORY_LENGTH + 10):
        pod = store.require(POD, "default", "a")
        pod["metadata"]["labels"] = {"n": str(index)}
        store.update(POD, pod)
    with pytest.raises(ApiError) as gone:
        store.watch(POD, None, lambda o: True, since=1)
    assert gone.value.code == 410
    assert gone.value.reason == "Expired"


def test_a_filtered_watch_sees_objects_enter_and_leave_its_filter() -> None:
    store = Store()
    store.create(POD, _pod("a", {"app": "web"}))
    watch = store.watch(POD, None, lambda o: o["metadata"]["labels"].get("tier") == "x", None)
    for labels in ({"tier": "x"}, {"tier": "x", "more": "1"}, {"tier": "y"}, {"tier": "z"}):
        pod = store.require(POD, "default", "a")
        pod["metadata"]["labels"] = labels
        store.update(POD, pod)
    seen = [watch.queue.get_nowait() for _ in range(watch.queue.qsize())]
    assert [change.type if change else None for change in seen] == ["ADDED", "MODIFIED", "DELETED"]


def _rs(name: str, revision: int, replicas: int, ready: int) -> dict[str, object]:
    return {
        "metadata": {
            "name": name,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
        },
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "readyReplicas": ready},
    }


def test_a_rolling_update_surges_first_and_drains_old_replicas_as_new_ones_get_ready() -> None:
    spec = {"replicas": 4, "strategy": {"type": "RollingUpdate"}}  # 25%: surge 1, unavailable 1
    start = rollout_targets(spec, [_rs("old", 1, 4, 4), _rs("new", 2, 0, 0)], "new")
    assert start == {"old": 3, "new": 1}
    # One new pod ready: one more old can go and one more new may start.
    step = rollout_targets(spec, [_rs("old", 1, 3, 3), _rs("new", 2, 1, 1)], "new")
    assert step == {"old": 2, "new": 2}
    done = rollout_targets(spec, [_rs("old", 1, 0, 0), _rs("new", 2, 4, 4)], "new")
    assert done == {"old": 0, "new": 4}
    strict = {"replicas": 3, "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}
    assert rollout_targets(strict, [_rs("old", 1, 3, 3), _rs("new", 2, 1, 0)], "new") == {
        "old": 3,
        "new": 1,
    }
    recreate = {"replicas": 2, "strategy": {"type": "Recreate"}}
    assert rollout_targets(recreate, [_rs("old", 1, 2, 2), _rs("new", 2, 0, 0)], "new") == {
        "old": 0,
        "new": 0,
    }


async def test_a_watch_sends_what_queued_while_the_loop_was_busy_in_one_chunk(
    tmp_path: Path,
) -> None:
    # A busy simulated cluster runs few turns of its event loop a second: a watch that sent one
    # event per turn fell seconds behind the store.
    cluster = Cluster(["node-1"], tmp_path)
    runner = web.AppRunner(ApiServer(cluster).app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    version = cluster.store.revision
    url = f"http://127.0.0.1:{port}/api/v1/namespaces/default/pods"
    try:
        async with aiohttp.ClientSession() as session:
            params = {"watch": "true", "resourceVersion": str(version)}
            cluster.store.create(POD, _pod("first"))  # the headers go out with the first event
            async with session.get(url, params=params) as response:
                first, _ = await asyncio.wait_for(response.content.readchunk(), 5)
                assert b'"first"' in first
                for index in range(5):
                    cluster.store.create(POD, _pod(f"burst-{index}"))
                chunk, _ = await asyncio.wait_for(response.content.readchunk(), 5)
                assert chunk.count(b"\n") == 5, chunk
    finally:
        cluster.store.close_watches()  # the watch would otherwise keep the server open
        await runner.cleanup()
