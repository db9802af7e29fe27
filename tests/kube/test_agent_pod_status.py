"""Reading an agent pod's status into running / starting / one failure sentence."""

from __future__ import annotations

from typing import Any

from tui.sources.kube.agent_status import agent_container_state, last_meaningful_line


def agent_pod(
    state: dict[str, Any] | None = None,
    phase: str = "Pending",
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if state is not None:
        status["containerStatuses"] = [{"name": "agent", "state": state}]
    return {
        "metadata": {"name": "podtap-x-web-1"},
        "spec": {"containers": [{"name": "agent", "image": "podtap-agent:9"}]},
        "status": status,
    }


def test_running() -> None:
    state = agent_container_state(agent_pod({"running": {"startedAt": "now"}}, "Running"), "agent")
    assert state.phase == "running"


def test_pending_without_status_is_starting() -> None:
    assert agent_container_state(agent_pod(), "agent").phase == "starting"
    state = agent_container_state(agent_pod({"waiting": {"reason": "ContainerCreating"}}), "agent")
    assert (state.phase, state.detail) == ("starting", "ContainerCreating")


def test_image_pull_failures_name_the_image_and_the_fix() -> None:
    for reason in ("ErrImagePull", "ImagePullBackOff"):
        state = agent_container_state(
            agent_pod(
                {
                    "waiting": {
                        "reason": reason,
                        "message": 'Back-off pulling image "podtap-agent:9"',
                    }
                }
            ),
            "agent",
        )
        assert state.phase == "failed"
        assert "podtap-agent:9" in state.detail
        assert reason in state.detail
        assert "--agent-image" in state.detail


def test_unschedulable() -> None:
    state = agent_container_state(
        agent_pod(
            conditions=[
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/2 nodes are available",
                }
            ]
        ),
        "agent",
    )
    assert state.phase == "failed"
    assert "cannot be scheduled: 0/2 nodes are available" in state.detail


def test_crashes_ask_for_the_log() -> None:
    crash = agent_container_state(agent_pod({"waiting": {"reason": "CrashLoopBackOff"}}), "agent")
    assert (crash.phase, crash.wants_log) == ("failed", True)
    exited = agent_container_state(
        agent_pod({"terminated": {"exitCode": 2, "reason": "Error"}}, "Failed"), "agent"
    )
    assert exited.phase == "failed"
    assert "code 2" in exited.detail
    assert exited.wants_log


def test_ephemeral_status_is_read_from_its_own_list() -> None:
    pod = {
        "metadata": {"name": "web-1"},
        "spec": {"ephemeralContainers": [{"name": "podtap-1", "image": "i"}]},
        "status": {
            "phase": "Running",
            "ephemeralContainerStatuses": [{"name": "podtap-1", "state": {"running": {}}}],
        },
    }
    assert agent_container_state(pod, "podtap-1", ephemeral=True).phase == "running"
    assert agent_container_state(pod, "podtap-2", ephemeral=True).phase == "starting"


def test_last_meaningful_line_skips_blank_and_traceback_lines() -> None:
    log = "starting\npodtap agent: container id abc not found on this node.\n\n"
    assert last_meaningful_line(log) == "podtap agent: container id abc not found on this node."
    assert last_meaningful_line("") == ""
