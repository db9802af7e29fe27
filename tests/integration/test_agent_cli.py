"""The agent as a command: its one JSON line, its exits, and one sentence per user error."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time

import pytest
from websockets.asyncio.client import connect

from agent.events import PROTOCOL_VERSION, Hello
from tests.integration.agent_process import agent_command, receive, running_agent

pytestmark = [pytest.mark.root, pytest.mark.timeout(30)]

# Capturing the host namespace on the discard port: harmless, and needs no lab.
HOST = ["--host", "--port", "9"]


def run_agent(args: list[str], prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), *agent_command(args)], capture_output=True, text=True, timeout=20
    )


def assert_one_sentence(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("podtap agent: ")
    for word in words:
        assert word in lines[0]


def test_announces_itself_in_exactly_one_json_line() -> None:
    with running_agent([*HOST, "--port", "80"]) as agent:
        assert agent.listening.startswith("127.0.0.1:")
        assert len(agent.agent_id) >= 8
        assert "lo" in agent.interfaces
        agent.process.terminate()
        assert agent.wait(10) == 0
        assert agent.process.stdout is not None
        assert agent.process.stdout.read() == b""  # nothing after the JSON line


async def test_hello_describes_the_agent() -> None:
    with running_agent([*HOST, "--port", "80"]) as agent:
        async with connect(agent.url()) as client:
            hello = (await receive(client))[0]
    assert isinstance(hello, Hello)
    assert (hello.agent_id, hello.target, hello.ports) == (agent.agent_id, "host", [9, 80])
    assert hello.interfaces == agent.interfaces
    assert hello.protocol == PROTOCOL_VERSION == 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_ends_it_cleanly(signum: signal.Signals) -> None:
    with running_agent(HOST) as agent:
        agent.process.send_signal(signum)
        assert agent.wait(10) == 0
        assert "Traceback" not in agent.stderr_text()


def test_exits_when_no_client_came() -> None:
    with running_agent([*HOST, "--first-client-timeout", "1"]) as agent:
        began = time.monotonic()
        assert agent.wait(10) == 0
        assert 0.9 < time.monotonic() - began < 5
        assert "no client connected within 1 s" in agent.stderr_text()


async def test_exits_after_the_last_client_left_not_before() -> None:
    args = [*HOST, "--first-client-timeout", "1", "--idle-timeout", "1"]
    with running_agent(args) as agent:
        async with connect(agent.url()) as client:
            await receive(client)
            await asyncio.sleep(2)  # both timeouts have passed, but a client is here
            assert agent.process.poll() is None
            await client.close()
        left = time.monotonic()
        assert agent.wait(10) == 0
        assert 0.9 < time.monotonic() - left < 5
        assert "no client for 1 s" in agent.stderr_text()


def test_not_root_says_so() -> None:
    # Root stripped of every capability is what an ordinary user has.
    stripped = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
    assert_one_sentence(run_agent(HOST, stripped), "CAP_NET_RAW", "sudo")


def test_an_unprivileged_user_is_told_so() -> None:
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run([*nobody, *agent_command(["--version"])], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this Python is not readable by an unprivileged user here")
    assert_one_sentence(run_agent(HOST, nobody), "sudo")


def test_no_such_pid() -> None:
    assert_one_sentence(run_agent(["--pid", "99999999", "--port", "80"]), "99999999")


def test_namespace_not_found() -> None:
    assert_one_sentence(run_agent(["--netns", "podtap-missing-ns", "--port", "80"]), "not found")


def test_container_not_found() -> None:
    result = run_agent(["--container-id", "containerd://" + "ab" * 32, "--port", "80"])
    assert_one_sentence(result, "not found")


@pytest.mark.parametrize("port", ["0", "65536", "-3"])
def test_port_out_of_range(port: str) -> None:
    assert_one_sentence(run_agent(["--host", "--port", port]), port, "1 and 65535")


@pytest.mark.parametrize("listen", ["localhost", "127.0.0.1:http", ":80", "127.0.0.1:70000"])
def test_bad_listen_address(listen: str) -> None:
    assert_one_sentence(run_agent([*HOST, "--listen", listen]), "HOST:PORT")


def test_listen_address_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        assert_one_sentence(run_agent([*HOST, "--listen", address]), address)


@pytest.mark.parametrize(
    "args",
    [["--port", "80"], ["--host"], ["--host", "--pid", "1", "--port", "80"], ["--host", "-p", "x"]],
)
def test_usage_mistakes_are_one_sentence(args: list[str]) -> None:
    assert_one_sentence(run_agent(args))


def test_the_json_line_is_valid_json_for_ipv6_too() -> None:
    with running_agent([*HOST, "--listen", "[::1]:0"]) as agent:
        assert agent.listening.startswith("[::1]:")
        json.dumps(agent.listening)


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0"])
def test_refuses_to_listen_beyond_loopback_without_a_token(listen: str) -> None:
    result = subprocess.run(
        agent_command([*HOST, "--listen", listen]),
        capture_output=True, text=True, timeout=20,
        env={k: v for k, v in os.environ.items() if k != "PODTAP_TOKEN"},
    )  # fmt: skip
    assert_one_sentence(result, listen, "--token")


def test_listens_beyond_loopback_with_a_token() -> None:
    with running_agent([*HOST, "--listen", "0.0.0.0:0", "--token", "s3cret"]) as agent:
        assert agent.listening.startswith("0.0.0.0:")
        agent.process.terminate()
        assert agent.wait(10) == 0


def test_captures_without_net_admin() -> None:
    """NET_RAW, SYS_ADMIN and SYS_PTRACE are all the agent Job grants (agent_spec.py)."""
    caps = "-all,+net_raw,+sys_admin,+sys_ptrace"
    prefix = ["setpriv", f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}"]
    probe = [*prefix, "grep", "CapEff", "/proc/self/status"]
    effective = int(subprocess.run(probe, capture_output=True, text=True).stdout.split()[1], 16)
    assert effective == (1 << 13) | (1 << 19) | (1 << 21)  # NET_RAW, SYS_PTRACE, SYS_ADMIN
    result = run_agent([*HOST, "--first-client-timeout", "1"], prefix=prefix)
    assert result.returncode == 0, result.stderr
    assert "lo" in json.loads(result.stdout)["interfaces"]
