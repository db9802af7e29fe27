"""Local targets (``pid/N``, ``netns/NAME``, ``host``): the agent as a child process.

The agent is started as ``python -m agent`` with a fresh random token (passed in its
environment, not its command line, so other users cannot read it from ``ps``), listens on a free
loopback port that it announces in one JSON line on stdout, and is streamed like any agent.
It runs in its own process group, so the terminal's Ctrl+C reaches podtap only and podtap stops
the agent itself, in order: SIGTERM, then SIGKILL if it does not exit in time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Self

from websockets.asyncio.client import ClientConnection, connect

from agent.errors import UserError
from agent.wire import MAX_MESSAGE_BYTES, TOKEN_ENV
from tui.model.updates import SourceStatus, Update
from tui.sources.stream import AgentStream, Backoff, StreamEnded, UpdateFanIn, bearer_headers
from tui.targets import LocalTarget

SOURCE = "local"

_AGENT_PREFIX = "podtap agent: "
_ROUTINE_LOG = re.compile(r"^\d{4}-\d\d-\d\d [\d:,.]+ (DEBUG|INFO) ")


class AgentProcess:
    """One agent child process: started, announced, watched and stopped."""

    def __init__(
        self,
        argv: Sequence[str],
        token: str,
        *,
        start_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.argv = list(argv)
        self._token = token
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=50)
        self._stderr_done: asyncio.Task[None] | None = None
        self.address = ""
        self.agent_id = ""
        self.interfaces: list[str] = []

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process else None

    async def start(self) -> None:
        """Start the agent and wait for its announcement; a UserError with the agent's own
        sentence if it exits first, or if it says nothing in time."""
        env = {**os.environ, TOKEN_ENV: self._token}
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as error:
            # Python itself out of the user's reach (a venv under /root run by another user).
            raise UserError(
                f"Cannot start the agent ({self.argv[0]}): {error.strerror or error}; "
                "run podtap with sudo, or from a Python this user may run."
            ) from None
        self._stderr_done = asyncio.create_task(self._collect_stderr())
        assert self._process.stdout is not None
        try:
            async with asyncio.timeout(self._start_timeout):
                line = await self._process.stdout.readline()
        except TimeoutError:
            await self.stop()
            raise UserError(
                f"The agent did not start capturing within {self._start_timeout:g} s"
                f"{self._last_words(': ')}."
            ) from None
        if not line:
            await self.exited(self._stop_timeout)
            raise UserError(self.exit_sentence())
        try:
            announcement = json.loads(line)
            self.address = str(announcement["listening"])
            self.agent_id = str(announcement.get("agent_id", ""))
            self.interfaces = [str(name) for name in announcement.get("interfaces", [])]
        except (ValueError, KeyError, TypeError):
            await self.stop()
            raise UserError(
                f"The agent announced itself in a way podtap cannot read ({line[:80]!r}): "
                "use the same podtap version for both."
            ) from None

    async def exited(self, grace: float) -> bool:
        """Whether the agent has exited, waiting up to ``grace`` seconds for it to."""
        if self._process is None:
            return True
        if self._process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._process.wait()), grace)
        if self._process.returncode is None:
            return False
        if self._stderr_done is not None:
            # Its last words may still be in the pipe.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stderr_done), 1.0)
        return True

    def exit_sentence(self) -> str:
        """Why the agent exited, in the agent's own words where it left some."""
        code = self.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            return f"The agent was stopped by {name}{self._last_words(': ')}."
        said = self._sentence()
        if said:
            return said
        return f"The agent exited with status {code}{self._last_words(': ')}."

    def _sentence(self) -> str:
        for line in reversed(self._stderr_tail):
            if line.startswith(_AGENT_PREFIX):
                return line[len(_AGENT_PREFIX) :]
        return ""

    def _last_words(self, lead: str) -> str:
        said = self._sentence()
        if not said:
            # Routine log lines say nothing about why it ended; the last other line might
            # (the end of a traceback, a warning).
            said = next(
                (line for line in reversed(self._stderr_tail) if not _ROUTINE_LOG.match(line)), ""
            )
        return f"{lead}{said.rstrip('.')}" if said else ""

    async def _collect_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        # Read continuously so that a chatty agent never blocks on a full pipe; keep the end.
        async for raw in self._process.stderr:
            text = raw.decode("utf-8", "replace").rstrip()
            if text:
                self._stderr_tail.append(text)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; returns once the process is reaped."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            if not await self.exited(self._stop_timeout):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._stderr_done is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._stderr_done, 1.0)


def agent_argv(target: LocalTarget, ports: Sequence[int]) -> list[str]:
    """The command that starts an agent on ``target`` for ``ports``, listening on loopback."""
    if target.kind == "pid":
        where = ["--pid", target.value]
    elif target.kind == "netns":
        where = ["--netns", target.value]
    else:
        where = ["--host"]
    port_args = [arg for port in ports for arg in ("--port", str(port))]
    return [
        sys.executable,
        "-m",
        "agent",
        *where,
        *port_args,
        "--listen",
        "127.0.0.1:0",
        # podtap connects at once; should podtap die without stopping the agent, the agent
        # notices its client is gone and exits by itself.
        "--first-client-timeout",
        "30",
        "--idle-timeout",
        "15",
    ]


class LocalSession:
    """A session on a local target: one agent child process, one reconnecting stream."""

    def __init__(self, target: LocalTarget, ports: list[int]) -> None:
        self.target = target
        self.ports = ports
        self.description = f"{target} port{'s' if len(ports) > 1 else ''} " + ",".join(
            map(str, ports)
        )
        self.token = secrets.token_urlsafe(24)
        self.agent: AgentProcess | None = None
        self._fan_in: UpdateFanIn | None = None

    async def __aenter__(self) -> Self:
        if not self.ports:
            raise UserError(
                f"Say which port {self.target} serves: add -p PORT (repeat it for more ports)."
            )
        self.agent = AgentProcess(agent_argv(self.target, self.ports), self.token)
        try:
            await self.agent.start()
        except BaseException:
            # Interrupted while the agent starts (Ctrl+C): __aexit__ will not run, so the
            # agent must not be left behind from here.
            await asyncio.shield(self.agent.stop())
            raise
        stream = AgentStream(SOURCE, self._connect, self.token, backoff=Backoff(0.1, 2.0))
        self._fan_in = UpdateFanIn()
        started = f"Agent started (pid {self.agent.pid})."
        self._fan_in.put([SourceStatus(SOURCE, "starting", started)])
        self._fan_in.add(SOURCE, stream)
        self._fan_in.seal()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._fan_in is not None:
                await self._fan_in.aclose()
        finally:
            if self.agent is not None:
                await self.agent.stop()

    async def updates(self) -> AsyncIterator[Sequence[Update]]:
        if self._fan_in is None:
            raise RuntimeError("enter the session (async with) before reading its updates")
        async for batch in self._fan_in:
            yield batch

    async def _connect(self, path: str) -> ClientConnection:
        agent = self.agent
        assert agent is not None
        if agent.returncode is not None:
            raise self._agent_gone(agent)
        try:
            return await connect(
                f"ws://{agent.address}{path}",
                additional_headers=bearer_headers(self.token),
                open_timeout=5,
                max_size=MAX_MESSAGE_BYTES,
                # Over loopback, deflating every batch would only cost CPU on both ends.
                compression=None,
            )
        except OSError:
            # Refused: the agent may have died; say why rather than retrying forever.
            if await agent.exited(grace=0.5):
                raise self._agent_gone(agent) from None
            raise

    @staticmethod
    def _agent_gone(agent: AgentProcess) -> StreamEnded:
        if agent.returncode == 0:
            return StreamEnded(agent.exit_sentence(), state="gone")
        return StreamEnded(agent.exit_sentence(), state="failed")
