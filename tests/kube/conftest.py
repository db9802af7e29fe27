"""Fixtures for tests against the simulated cluster (tests/kubesim)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.conftest import IS_ROOT
from tests.kubesim import KubeSim
from tests.kubesim.config import config_from_args, parser

DEFAULT_CLUSTER = ("--deployment", "default/web=3:8080", "--nodes", "2")


@pytest.fixture
def kubesim(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KubeSim]:
    """A running simulated cluster, every seeded pod Ready. Defaults to a deployment
    default/web with 3 replicas on port 8080 over 2 nodes; ``@pytest.mark.kubesim(*args)``
    takes ``python -m tests.kubesim`` options instead."""
    if not IS_ROOT:
        pytest.skip("the cluster simulator needs root for network namespaces and cgroups")
    marker = request.node.get_closest_marker("kubesim")
    options = tuple(marker.args) if marker is not None else DEFAULT_CLUSTER
    kubeconfig = tmp_path / "kubeconfig"
    args = parser().parse_args(["--kubeconfig", str(kubeconfig), *options])
    with KubeSim(config_from_args(args), kubeconfig) as sim:
        yield sim


@pytest.fixture
def kube_client(kubesim: KubeSim) -> Iterator[client.ApiClient]:
    """An official-client ApiClient configured from the simulator's kubeconfig."""
    api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubesim.kubeconfig)
    )
    yield api_client
    api_client.close()  # type: ignore[no-untyped-call]
