"""A node agent (``podtap agent --node``) tapping two "pods": real network namespaces whose
server processes sit in cgroups named after container ids, as on a Kubernetes node."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from agent.events import (
    AnyEvent,
    ConnectionOpened,
    DataReceived,
    PodTapFailed,
    PodTapped,
    PodUntapped,
)
from agent.requests import TapPod, UntapPod, encode_request
from tests.integration.agent_process import receive, running_agent
from tests.kubesim import cgroups
from tests.netlab import Lab, network_lab

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]

PORT = 8080


@dataclass(frozen=True)
class FakePod:
    name: str
    container_id: str
    lab: Lab

    def get(self, path: str) -> str:
        url = f"http://{self.lab.ns_ip}:{PORT}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.headers["x-pod"])


@contextmanager
def fake_pod(name: str) -> Iterator[FakePod]:
    """A namespace running the simulator's HTTP server, in a container's cgroups."""
    container_id = secrets.token_hex(32)
    with network_lab("na") as lab:
        server = lab.popen(
            [sys.executable, "-m", "tests.kubesim.podserver", name, str(PORT)],
            stderr=subprocess.DEVNULL,
        )
        directories: list[Path] = []
        try:
            directories = cgroups.create_container_cgroups(
                "BestEffort", secrets.token_hex(8), container_id
            )
            for directory in directories:
                (directory / "cgroup.procs").write_text(str(server.pid))
            pod = FakePod(name, container_id, lab)
            deadline = time.monotonic() + 60  # a Python start-up on a busy machine
            while True:
                try:
                    pod.get("/ready")
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the pod's server did not start"
                    time.sleep(0.1)
            yield pod
        finally:
            server.kill()
            server.wait(5)
            cgroups.kill_and_remove(directories)


async def until(
    connection: ClientConnection,
    wanted: type[AnyEvent],
    count: int = 1,
    seen: list[AnyEvent] | None = None,
) -> list[AnyEvent]:
    """Read until ``count`` events of type ``wanted`` came; everything read is kept in seen."""
    found: list[AnyEvent] = []
    seen = seen if seen is not None else []
    async with asyncio.timeout(15):
        while len(found) < count:
            for event in await receive(connection):
                seen.append(event)
                if isinstance(event, wanted):
                    found.append(event)
    return found


async def test_a_node_agent_taps_the_pods_it_is_asked_for_and_names_them() -> None:
    with ExitStack() as stack:
        web = stack.enter_context(fake_pod("web-1"))
        api = stack.enter_context(fake_pod("api-1"))
        agent = stack.enter_context(running_agent(["--node", "node-1", "--port", str(PORT)]))
        async with connect(agent.url()) as client:
            (hello,) = await receive(client)
            assert getattr(hello, "target", None) == "node/node-1"
            for pod in (web, api):
                await client.send(
                    encode_request(TapPod(pod=f"default/{pod.name}", container_id=pod.container_id))
                )
            tapped = await until(client, PodTapped, 2)
            assert {e.pod for e in tapped if isinstance(e, PodTapped)} == {
                "default/web-1",
                "default/api-1",
            }
            # Asking again changes nothing; an unknown container is named as such.
            await client.send(
                encode_request(TapPod(pod="default/web-1", container_id=web.container_id))
            )
            await client.send(encode_request(TapPod(pod="default/ghost", container_id="ab" * 32)))
            (failed,) = await until(client, PodTapFailed)
            assert isinstance(failed, PodTapFailed)
            assert failed.pod == "default/ghost"
            assert "not found" in failed.reason

            for pod in (web, api):
                assert await asyncio.to_thread(pod.get, f"/to/{pod.name}") == pod.name
            seen: list[AnyEvent] = []
            opened = await until(client, ConnectionOpened, 2, seen)
            pods = {e.conn: e.pod for e in opened if isinstance(e, ConnectionOpened)}
            assert sorted(pods.values()) == ["default/api-1", "default/web-1"]
            assert len(set(pods)) == 2  # one agent-wide numbering
            async with asyncio.timeout(15):
                while not all(
                    any(
                        isinstance(e, DataReceived)
                        and e.conn == conn
                        and f"GET /to/{name[8:]}".encode() in e.data
                        for e in seen
                    )
                    for conn, name in pods.items()
                ):
                    seen += await receive(client)

            await client.send(encode_request(UntapPod(pod="default/api-1")))
            (untapped,) = await until(client, PodUntapped)
            assert isinstance(untapped, PodUntapped)
            assert untapped.pod == "default/api-1"
            await asyncio.to_thread(api.get, "/after-untap")
            await asyncio.to_thread(web.get, "/still-tapped")
            later: list[AnyEvent] = []
            (last,) = await until(client, ConnectionOpened, 1, later)
            assert isinstance(last, ConnectionOpened)
            assert last.pod == "default/web-1"
            assert not any(
                isinstance(e, ConnectionOpened) and e.pod == "default/api-1" for e in later
            )
