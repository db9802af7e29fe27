"""Container choice, ports and readiness: the rules podtap applies to a pod it reads."""

from __future__ import annotations

from typing import Any

import pytest

from agent.errors import UserError
from tui.sources.kube.pods import (
    choose_container,
    container_id,
    container_ports,
    is_ready,
    source_name,
)


def pod(
    *containers: dict[str, Any],
    annotations: dict[str, str] | None = None,
    ready: bool = True,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web-1", "namespace": "shop", "annotations": annotations or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"containers": list(containers)},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": c["name"], "containerID": f"containerd://{c['name']}-id"}
                for c in containers
            ],
        },
    }


def container(name: str, *ports: int, udp: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "ports": [{"containerPort": p, "protocol": "TCP"} for p in ports],
    }
    if udp is not None:
        spec["ports"].append({"containerPort": udp, "protocol": "UDP"})
    return spec


def test_named_container_wins_over_everything() -> None:
    chosen = choose_container(
        pod(
            container("istio-proxy"),
            container("app"),
            container("side"),
            annotations={"kubectl.kubernetes.io/default-container": "app"},
        ),
        "side",
    )
    assert (chosen.name, chosen.guessed) == ("side", False)


def test_a_missing_named_container_is_one_sentence_listing_the_real_ones() -> None:
    with pytest.raises(UserError, match=r"no container 'db'.*app, side"):
        choose_container(pod(container("app"), container("side")), "db")


def test_default_container_annotation_is_followed() -> None:
    chosen = choose_container(
        pod(
            container("app"),
            container("worker"),
            annotations={"kubectl.kubernetes.io/default-container": "worker"},
        ),
        None,
    )
    assert (chosen.name, chosen.guessed) == ("worker", False)


def test_mesh_sidecars_are_skipped_and_the_guess_is_flagged() -> None:
    chosen = choose_container(
        pod(container("istio-proxy", 15001), container("linkerd-proxy"), container("api", 80)),
        None,
    )
    assert (chosen.name, chosen.guessed) == ("api", True)


def test_a_single_container_is_no_guess() -> None:
    chosen = choose_container(pod(container("api")), None)
    assert (chosen.name, chosen.guessed) == ("api", False)


def test_ports_are_the_tcp_container_ports_of_that_container() -> None:
    p = pod(container("istio-proxy", 15001), container("api", 8080, 9090, 8080, udp=53))
    assert container_ports(p, "api") == [8080, 9090]
    assert container_ports(p, "istio-proxy") == [15001]


def test_container_id_comes_from_the_status() -> None:
    p = pod(container("a"), container("b"))
    assert container_id(p, "b") == "containerd://b-id"
    assert container_id(p, "c") is None


def test_readiness() -> None:
    assert is_ready(pod(container("a")))
    assert not is_ready(pod(container("a"), ready=False))
    assert not is_ready(pod(container("a"), deleting=True))


def test_source_name_is_namespace_slash_pod() -> None:
    assert source_name(pod(container("a"))) == "shop/web-1"
