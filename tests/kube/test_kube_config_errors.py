"""No cluster, no kubeconfig, a wrong context: one sentence each, no traceback (no root)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kube.dumping import ROOT

pytestmark = [pytest.mark.timeout(60)]


def podtap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


@pytest.fixture
def dead_kubeconfig(tmp_path: Path) -> str:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: gone, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: me, user: {{token: abc}}}}]
contexts: [{{name: gone, context: {{cluster: gone, user: me, namespace: shop}}}}]
current-context: gone
""")
    return str(path)


@pytest.mark.parametrize("command", [["dump", "deployment/web"], ["clean", "-A"]])
def test_an_unreachable_api_server_is_one_sentence(
    dead_kubeconfig: str, command: list[str]
) -> None:
    result = podtap(*command, "--kubeconfig", dead_kubeconfig)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("podtap: Cannot reach the Kubernetes API at http://127.0.0.1:")
    assert result.stderr.rstrip().endswith(
        "check the cluster is up and the kubeconfig points at it."
    )


def test_a_missing_kubeconfig_and_an_unknown_context(dead_kubeconfig: str, tmp_path: Path) -> None:
    missing = podtap("dump", "pod/x", "--kubeconfig", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert missing.stderr == f"podtap: The kubeconfig file {tmp_path / 'nope'} does not exist.\n"
    context = podtap("dump", "pod/x", "--kubeconfig", dead_kubeconfig, "--context", "prod")
    assert context.returncode == 1
    assert context.stderr == "podtap: The kubeconfig has no context 'prod'; it has: gone.\n"
