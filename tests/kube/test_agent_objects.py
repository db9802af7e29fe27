"""The node agent's Job, its Secret and pod, and the ephemeral container, as podtap sends
them to the API."""

from __future__ import annotations

import base64
from typing import Any

from tui.sources.kube.agent_spec import (
    AgentSettings,
    dry_run_node_pod,
    ephemeral_patch,
    label_value,
    node_agent_job,
    token_secret,
)

TARGET: dict[str, Any] = {
    "metadata": {"name": "web-5d8f7c9b6-abcde", "namespace": "shop"},
    "spec": {"nodeName": "node-2", "containers": [{"name": "web"}]},
}
HARDENED = {
    "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "SYS_ADMIN", "SYS_PTRACE"]},
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
SETTINGS = AgentSettings(
    session="0a1b2c3d",
    token="s3cret",
    image="podtap-agent:test",
    namespace=None,
    ports=(8080, 9090),
)


def test_privileged_replaces_the_capabilities() -> None:
    settings = AgentSettings(session="0a1b2c3d", token="t", image="i", namespace="podtap",
                             ports=(80,), privileged=True)  # fmt: skip
    job = node_agent_job(settings, "node-1", "podtap")
    assert job["metadata"]["namespace"] == "podtap"
    assert job["spec"]["template"]["spec"]["containers"][0]["securityContext"] == {
        "privileged": True
    }


def test_label_values_fit_kubernetes_limits() -> None:
    assert len(label_value("y" * 250)) <= 63
    assert label_value("y" * 250) != label_value("y" * 249)


def test_the_ephemeral_agent_shares_the_pods_namespace_and_keeps_existing_ones() -> None:
    target = {**TARGET, "spec": {**TARGET["spec"], "ephemeralContainers": [{"name": "debug"}]}}
    patch = ephemeral_patch(SETTINGS, target)
    existing, added = patch["spec"]["ephemeralContainers"]
    assert existing == {"name": "debug"}
    assert added["name"] == "podtap-0a1b2c3d"
    assert added["args"][0] == "--host"
    port = int(added["args"][added["args"].index("--listen") + 1].rpartition(":")[2])
    assert port != 47000
    assert added["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}


def test_a_node_agent_reads_its_token_from_a_secret_its_job_owns() -> None:
    job = node_agent_job(SETTINGS, "node-7", "shop")
    name = job["metadata"]["name"]
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeName"] == "node-7"
    assert pod["hostPID"] is True
    assert pod["automountServiceAccountToken"] is False
    (agent,) = pod["containers"]
    assert agent["args"][:2] == ["--node", "node-7"]
    assert agent["securityContext"] == HARDENED
    assert {
        "name": "PODTAP_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": name, "key": "token"}},
    } in agent["env"]
    assert not any(item.get("value") == "s3cret" for item in agent["env"])
    assert agent["resources"]["limits"]["memory"]
    secret = token_secret(SETTINGS, job, "uid-1")
    assert secret["metadata"]["name"] == name
    assert secret["metadata"]["namespace"] == "shop"
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": "uid-1"}
    ]
    assert base64.b64decode(secret["data"]["token"]) == b"s3cret"
    assert secret["metadata"]["labels"] == job["metadata"]["labels"]
    assert dry_run_node_pod(SETTINGS, "node-7", "shop")["spec"] == pod
    assert len(name) <= 63
    assert len(node_agent_job(SETTINGS, "n" * 200, "shop", attempt=2)["metadata"]["name"]) <= 63
