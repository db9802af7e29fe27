"""A broken port-forward's relay thread ends without a traceback over the user's terminal."""

from __future__ import annotations

import threading

import pytest

from tui.sources.kube.portforward import quiet_relay_failures

pytestmark = pytest.mark.timeout(10)


def passed_on(thread_name: str, error: BaseException) -> list[threading.ExceptHookArgs]:
    """What the hook hands to the one before it when ``error`` ends thread ``thread_name``."""
    seen: list[threading.ExceptHookArgs] = []
    hook = quiet_relay_failures(seen.append)
    thread = threading.Thread(name=thread_name)
    hook(threading.ExceptHookArgs((type(error), error, None, thread)))  # type: ignore[call-arg]
    return seen


def test_a_relay_thread_broken_by_the_network_prints_nothing() -> None:
    reset = ConnectionResetError(104, "Connection reset by peer")
    assert passed_on("Kubernetes port forward proxy: 47000", reset) == []


def test_any_other_failure_still_gets_its_traceback() -> None:
    reset = ConnectionResetError(104, "Connection reset by peer")
    assert len(passed_on("podtap capture", reset)) == 1
    assert len(passed_on("Kubernetes port forward proxy: 47000", ValueError("bug"))) == 1


def test_it_is_installed() -> None:
    assert threading.excepthook.__qualname__.startswith("quiet_relay_failures")
