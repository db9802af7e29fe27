"""How podtap runs an agent child process: its sentence on failure arrives intact, an agent that
never announces itself is given up on, and one that ignores SIGTERM is killed.

Stand-in agents are real processes (sh, python) that behave like the agent's failure modes, so
these run without root."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from agent.errors import UserError
from tui.sources.local import AgentProcess, agent_argv
from tui.targets import LocalTarget

pytestmark = pytest.mark.timeout(20)


async def test_the_agents_own_sentence_arrives_intact() -> None:
    sentence = (
        "podtap needs root to capture packets (CAP_NET_RAW and CAP_SYS_ADMIN): "
        "run it with sudo — or add the capabilities."
    )
    script = (
        "import sys, logging; logging.basicConfig(); "
        "logging.getLogger('agent').warning('starting'); "
        f"sys.stderr.write('podtap agent: ' + {sentence!r} + '\\n'); sys.exit(2)"
    )
    agent = AgentProcess([sys.executable, "-c", script], token="t")
    with pytest.raises(UserError) as raised:
        await agent.start()
    assert str(raised.value) == sentence
    assert agent.returncode == 2


async def test_an_agent_that_dies_without_a_sentence_gives_its_status() -> None:
    agent = AgentProcess(["sh", "-c", "exit 3"], token="t")
    with pytest.raises(UserError, match=r"^The agent exited with status 3\.$"):
        await agent.start()


async def test_an_interpreter_the_user_may_not_run_is_one_sentence(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o644)  # no execute bit: refused even to root
    agent = AgentProcess([str(python), "-m", "agent"], token="t")
    with pytest.raises(UserError, match=r"^Cannot start the agent \(.*python\): Permission denied"):
        await agent.start()
    assert agent.pid is None


async def test_an_agent_that_never_announces_itself_is_stopped() -> None:
    agent = AgentProcess(["sleep", "30"], token="t", start_timeout=0.5)
    with pytest.raises(UserError, match=r"did not start capturing within 0\.5 s"):
        await agent.start()
    assert agent.returncode is not None


async def test_an_agent_that_ignores_sigterm_is_killed() -> None:
    script = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        'print(\'{"listening": "127.0.0.1:9", "agent_id": "x", "interfaces": []}\', '
        "flush=True); time.sleep(30)"
    )
    agent = AgentProcess([sys.executable, "-c", script], token="t", stop_timeout=0.5)
    await agent.start()
    assert agent.address == "127.0.0.1:9"
    started = time.monotonic()
    await agent.stop()
    assert time.monotonic() - started < 5
    assert agent.returncode == -9


async def test_the_token_travels_in_the_environment_not_the_command_line() -> None:
    script = "import os; print('{\"listening\": \"' + os.environ['PODTAP_TOKEN'] + '\"}')"
    agent = AgentProcess([sys.executable, "-c", script], token="s3cret")
    await agent.start()
    await agent.stop()
    assert agent.address == "s3cret"
    argv = agent_argv(LocalTarget("netns", "blue"), [80, 8080])
    assert "s3cret" not in " ".join(argv)
    assert argv[1:] == [
        "-m",
        "agent",
        "--netns",
        "blue",
        "--port",
        "80",
        "--port",
        "8080",
        "--listen",
        "127.0.0.1:0",
        "--first-client-timeout",
        "30",
        "--idle-timeout",
        "15",
    ]
