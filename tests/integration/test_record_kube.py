"""``podtap record`` on a Kubernetes target (the simulated cluster): every replica's exchanges
land in one file, each under its pod, and the agents are gone afterwards."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jsonschema
import pytest

from agent.events import DataReceived
from tests.kube.conftest import kubesim  # noqa: F401 - the simulated cluster fixture
from tests.kubesim import KubeSim
from tui.output.jsonl import decode_header, decode_line

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "tests" / "unit" / "har-1.2.schema.json").read_text())


def get(ip: str, path: str) -> None:
    with urllib.request.urlopen(f"http://{ip}:8080{path}", timeout=5) as response:
        response.read()


def wait_for(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


@pytest.mark.kubesim("--deployment", "default/web=2:8080", "--nodes", "1")
@pytest.mark.parametrize("suffix", ["har", "jsonl"])
def test_every_replica_is_recorded_under_its_pod(
    kubesim: KubeSim,  # noqa: F811
    tmp_path: Path,
    suffix: str,
) -> None:
    output = tmp_path / f"web.{suffix}"
    pods = kubesim.pods("default", "app=web")
    assert len(pods) == 2
    record = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tui",
            "record",
            "deployment/web",
            "-p",
            "8080",
            "-o",
            str(output),
            "--kubeconfig",
            str(kubesim.kubeconfig),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert record.stderr is not None
        deadline = time.monotonic() + 60
        for line in record.stderr:
            if "Listening for traffic" in line:
                break
            assert time.monotonic() < deadline, "record never started listening"
        # Every agent becomes live on its own schedule: keep asking each pod for a while.
        for round_number in range(12):
            for pod in pods:
                get(pod.ip, f"/to/{pod.name}/{round_number}")
            time.sleep(0.5)
        time.sleep(1.5)
        record.send_signal(signal.SIGINT)
        assert record.wait(30) == 0
        rest = record.stderr.read()
    finally:
        if record.poll() is None:
            record.kill()
            record.wait()
    assert "Traceback" not in rest
    assert rest.splitlines()[-1].startswith(f"podtap: wrote {output} (")
    if suffix == "har":
        document = json.loads(output.read_bytes())
        jsonschema.validate(document, SCHEMA)
        paths_by_pod: dict[str, set[str]] = {}
        for entry in document["log"]["entries"]:
            path = entry["request"]["url"].split(":8080", 1)[1]
            paths_by_pod.setdefault(entry["_pod"], set()).add(path.rsplit("/", 1)[0])
    else:
        lines = output.read_bytes().splitlines()
        header = decode_header(lines[0])
        assert header is not None
        assert header.target == "deployment/web"
        paths_by_pod = {}
        for raw in lines[1:]:
            source, event = decode_line(raw)
            if (
                isinstance(event, DataReceived)
                and event.direction == "in"
                and (event.data.startswith(b"GET "))
            ):
                target = event.data.split(b" ")[1].decode()
                paths_by_pod.setdefault(source, set()).add(target.rsplit("/", 1)[0])
    assert paths_by_pod == {f"default/{pod.name}": {f"/to/{pod.name}"} for pod in pods}
    wait_for("every agent process to end", lambda: not kubesim.agent_processes(), 30)
