"""Running a real agent (``python -m agent``) as a subprocess in tests, and talking to it."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection

from agent.events import AnyEvent
from agent.wire import decode_batch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class RunningAgent:
    process: subprocess.Popen[bytes]
    listening: str
    agent_id: str
    interfaces: list[str]

    def url(self, after: int = 0, agent: str | None = None) -> str:
        query = f"?after={after}" + (f"&agent={agent}" if agent else "")
        return f"ws://{self.listening}/v1/events{query}"

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stderr_text(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")


def agent_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "agent", *args]


@contextmanager
def running_agent(args: Sequence[str], startup_timeout: float = 10.0) -> Iterator[RunningAgent]:
    """Start the agent, wait for its JSON line; SIGKILL it afterwards if it is still there."""
    process = subprocess.Popen(
        agent_command(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        line = _read_line(process, startup_timeout)
        if not line:
            process.wait(5)
            raise AssertionError(f"agent did not start: {process.stderr.read()!r}")  # type: ignore[union-attr]
        announced = json.loads(line)
        yield RunningAgent(
            process, announced["listening"], announced["agent_id"], announced["interfaces"]
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    fd = process.stdout.fileno()
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return b""
        byte = os.read(fd, 1)
        if not byte:
            return b""
        line += byte
    return line


async def receive(connection: ClientConnection) -> list[AnyEvent]:
    message = await connection.recv()
    assert isinstance(message, bytes)
    return decode_batch(message)
