"""`podtap demo`: the shop answers like an API, the environment comes up with real traffic of
every kind, and nothing of it (namespace, veth, processes) survives its end, however it ends."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tui.demo import ClientCall, DemoEnvironment
from tui.demo.network import DemoNetwork, interface_exists, remove_stale
from tui.demo.shop import Shop, ShopRequest, answer_line

REPO = Path(__file__).resolve().parents[2]
AUTH = {"authorization": "Bearer t", "x-user-id": "alice"}


def _status(shop: Shop, method: str, target: str, body: bytes = b"", **headers: str) -> int:
    return shop.handle(ShopRequest(method, target, {**AUTH, **headers}, body)).status


def test_the_shop_answers_like_a_small_api() -> None:
    shop = Shop(rng=random.Random(1), failure_rate=0.0)
    assert shop.handle(ShopRequest("GET", "/healthz", {})).body == b"ok"
    assert shop.handle(ShopRequest("GET", "/api/orders", {})).status == 401
    assert _status(shop, "GET", "/api/users/alice") == 200
    assert _status(shop, "GET", "/api/users/mallory") == 404
    assert _status(shop, "POST", "/api/orders", b'{"items": [{"sku": "sku-1001"}]}') == 201
    assert _status(shop, "POST", "/api/orders", b'{"items": "everything"') == 400
    assert _status(shop, "POST", "/api/cart/items", b'{"sku": "sku-1003"}') == 201
    assert _status(shop, "DELETE", "/api/cart/items/sku-1003") == 204
    assert _status(shop, "DELETE", "/api/cart/items/sku-1003") == 404
    assert _status(shop, "PUT", "/api/orders") == 405
    orders = json.loads(shop.handle(ShopRequest("GET", "/api/orders", AUTH)).body)
    assert orders["total"] == 1
    assert shop.handle(ShopRequest("GET", "/api/search?q=mug", AUTH)).delay > 0
    assert b'http_requests_total{method="POST",code="201"} 2' in shop._metrics()
    flaky = Shop(rng=random.Random(1), failure_rate=1.0)
    assert _status(flaky, "GET", "/api/orders") == 500


def test_the_cache_port_speaks_a_line_protocol() -> None:
    store: dict[str, str] = {}
    assert answer_line("PING\r\n", store) == ("+PONG", False)
    assert answer_line("SET k v w\r\n", store) == ("+OK", False)
    assert answer_line("GET k\r\n", store) == ("$v w", False)
    assert answer_line("GET nope\r\n", store) == ("$-1", False)
    assert answer_line("QUIT\r\n", store) == ("+BYE", True)


def _processes_of(parent: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                children.append(int(entry))
    return children


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _assert_removed(network: DemoNetwork) -> None:
    assert not os.path.exists(f"/run/netns/{network.name}")
    assert not interface_exists(network.host_interface)


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _curl(*args: str) -> str:
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "5", *args], capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.mark.root
@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_environment_serves_real_traffic_of_every_kind_and_leaves_nothing() -> None:
    calls: list[ClientCall] = []
    started = time.monotonic()
    with DemoEnvironment(on_call=calls.append, pace=0.5) as demo:
        network, service = demo.network, demo.service_pid
        assert service is not None
        assert os.path.exists(f"/run/netns/{demo.name}")
        assert str(demo.target) == f"netns/{demo.name}"
        # curl from the host reaches the service over IPv4 and IPv6.
        url = f"http://{demo.service_ip}:8080"
        assert _curl(f"{url}/healthz") == "ok"
        user = json.loads(_curl("-H", "authorization: Bearer x", f"{url}/api/users/carol"))
        assert user["tenant"] == "globex"
        assert "401" in _curl("-o", "/dev/null", "-w", "%{http_code}", f"{url}/api/orders")
        assert _curl(f"http://[{network.service_ip6}]:8080/healthz") == "ok"

        wanted_kinds = {"keep-alive", "short", "probe", "cache", "tls", "grpc", "h2c", "h2", "ws"}
        wanted_clients = {"alice", "bob", "carol", "dave", "kubelet", "prometheus", "cron",
                          "legacy", "cache", "payments", "warehouse", "catalog", "ana",
                          "raj"}  # fmt: skip
        wanted_outcomes = {"200", "201", "401", "404", "+PONG", "alert", "OK", "sent", "1000"}

        def complete() -> bool:
            snapshot = list(calls)
            return (
                {e.kind for e in snapshot} >= wanted_kinds
                and {e.client for e in snapshot} >= wanted_clients
                and {e.outcome for e in snapshot} >= wanted_outcomes
            )

        assert _wait_for(complete, 40), sorted({(e.kind, e.client, e.outcome) for e in calls})
    snapshot = list(calls)
    assert not [e for e in snapshot if e.outcome.startswith("error")]
    # Keep-alive clients reuse connections; short ones never do.
    per_connection: dict[int, list[ClientCall]] = {}
    for call in snapshot:
        per_connection.setdefault(call.connection, []).append(call)
    assert any(len(group) > 1 for group in per_connection.values() if group[0].kind == "keep-alive")
    assert all(len(group) == 1 for group in per_connection.values() if group[0].kind == "short")
    assert len(snapshot) / (time.monotonic() - started) < 80  # paced, not a flood

    _assert_removed(network)
    assert _gone(service)
    stopped_at = len(calls)
    time.sleep(1.0)
    assert len(calls) == stopped_at  # the traffic stopped with the demo


def _start_demo(*args: str) -> subprocess.Popen[str]:
    with _sigint_not_ignored():
        return subprocess.Popen(
            [sys.executable, "-m", "tui", "demo", "--no-ui", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@contextlib.contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """Let the demo take Ctrl+C as it does from a terminal, even when these tests run where
    SIGINT is ignored (a background job of a non-interactive shell): a child inherits that."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


def _read_lines(process: subprocess.Popen[str], count: int) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    while len(lines) < count:
        line = process.stdout.readline()
        assert line, f"podtap demo ended early: {process.stderr.read() if process.stderr else ''}"
        lines.append(line)
    return lines


@pytest.mark.root
@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_podtap_demo_cleans_up_on_sigterm_and_ctrl_c(signum: int) -> None:
    process = _start_demo()
    network = DemoNetwork.for_pid(process.pid)
    try:
        lines = _read_lines(process, 5)
        assert all("->" in line for line in lines)
        services = _processes_of(process.pid)
        assert services
        assert os.path.exists(f"/run/netns/{network.name}")
        process.send_signal(signum)
        # Read both pipes while it stops: what it prints meanwhile (the events it still held)
        # must not fill a pipe nobody reads, and block it.
        _, errors = process.communicate(timeout=20)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    _assert_removed(network)
    assert all(_gone(pid) for pid in services)
    assert "Traceback" not in errors


@pytest.mark.root
@pytest.mark.timeout(60)
def test_podtap_demo_duration_ends_it_by_itself() -> None:
    started = time.monotonic()
    process = _start_demo("--duration", "2")
    try:
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert 2.0 <= time.monotonic() - started < 20
    assert len(out.splitlines()) >= 5
    assert "Press Ctrl+C to stop" in err
    _assert_removed(DemoNetwork.for_pid(process.pid))


@pytest.mark.root
@pytest.mark.timeout(60)
def test_a_killed_demo_takes_its_service_along_and_the_next_one_sweeps_its_network() -> None:
    process = _start_demo()
    network = DemoNetwork.for_pid(process.pid)
    try:
        _read_lines(process, 2)
        services = _processes_of(process.pid)
        assert services
        process.kill()
        process.wait()
        assert all(_gone(pid) for pid in services)
        assert os.path.exists(f"/run/netns/{network.name}")  # nobody could remove it
        assert network.name in remove_stale()
        _assert_removed(network)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        remove_stale()


@pytest.mark.root
@pytest.mark.timeout(30)
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_without_root_demo_says_so_in_one_sentence() -> None:
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "tui", "demo", "--no-ui"],
        cwd=REPO, capture_output=True, text=True, timeout=25,
    )  # fmt: skip
    if "Permission denied" in result.stderr and "podtap:" not in result.stderr:
        pytest.skip("the checkout is not readable by nobody")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "podtap: podtap demo needs root to create a network namespace: run it with sudo."
    )


@pytest.mark.root
@pytest.mark.timeout(90)
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_podtap_demo_opens_the_app_on_its_traffic_in_a_real_terminal(tmp_path: Path) -> None:
    session = f"podtap-demo-test-{os.getpid()}"
    exit_file = tmp_path / "exit"
    command = (
        f"cd {REPO} && {sys.executable} -m tui demo --duration 12; echo $? > {exit_file}; sleep 60"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "45", command], check=True
    )
    try:
        screens: list[str] = []

        def shows_traffic() -> bool:
            pane = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session],
                capture_output=True, text=True, check=False,
            ).stdout  # fmt: skip
            screens.append(pane)
            return "/api/" in pane and "netns/podtap-demo-" in pane and "8443" in pane

        assert _wait_for(shows_traffic, 40), screens[-1] if screens else "no screen"
        assert _wait_for(exit_file.exists, 40)
        assert exit_file.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)
    # The demo's own network (its name is on the status bar) is gone.
    names = [word for word in screens[-1].split() if word.startswith("netns/podtap-demo-")]
    assert names
    _assert_removed(DemoNetwork.for_pid(int(names[0].rsplit("-", 1)[1])))
