"""A websocket to an agent through the API server: a fresh port-forward for every connection.

The official client's port-forward is blocking and hands out one end of a socket pair that a
proxy thread copies to and from the API server's websocket; asyncio uses that end directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from kubernetes import client
from kubernetes.stream import portforward
from websocket import WebSocketException  # the kubernetes client's websocket library
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.protocol import State

from agent.wire import MAX_MESSAGE_BYTES
from tui.sources.kube.agents import RunningAgent
from tui.sources.kube.cluster import ApiException, Cluster, status_message
from tui.sources.stream import StreamEnded, bearer_headers, events_path

FIRST_ANSWER_RETRY = 0.25
"""An agent pod is running before its agent listens: retry this often until it answers."""
OPENING_THREADS = 32
"""Port-forwards being opened (and agents' pods read when one fails) at once, over every
agent: with asyncio's default pool (a few threads on a small machine) 30 node agents were
reached a handful at a time, several seconds per handful on a busy API server."""
_OPENING = ThreadPoolExecutor(OPENING_THREADS, thread_name_prefix="podtap port-forward")
_PROXY_THREAD = "Kubernetes port forward proxy"
"""How the kubernetes client names the thread that relays a port-forward's bytes."""


ThreadHook = Callable[[threading.ExceptHookArgs], object]


def quiet_relay_failures(previous: ThreadHook) -> ThreadHook:
    """A thread hook that passes everything to ``previous`` but the socket errors that end a
    port-forward's relay thread when its connection breaks (an agent gone, a cut network,
    Ctrl+C): Python would print them as tracebacks over the user's terminal, and the websocket
    over that port-forward fails too, which the stream reports in one sentence."""

    def hook(args: threading.ExceptHookArgs) -> None:
        thread = args.thread
        if (
            thread is not None
            and thread.name.startswith(_PROXY_THREAD)
            and isinstance(args.exc_value, OSError | EOFError | WebSocketException)
        ):
            return
        previous(args)

    return hook


threading.excepthook = quiet_relay_failures(threading.excepthook)


Diagnosis = Callable[[], "tuple[str, str] | None"]
"""Blocking: why the agent cannot answer, read from its pod (("failed"|"gone", sentence))."""

FIRST_PATH = events_path(0, None)


class AgentConnector:
    """The ``Connector`` of one agent's :class:`~tui.sources.stream.AgentStream`.

    When a connection fails, the agent's pod is asked why: an agent that exited or a pod that
    was deleted ends the stream with that sentence instead of endless retries.
    """

    def __init__(
        self,
        cluster: Cluster,
        agent: RunningAgent,
        token: str,
        first_answer_timeout: float,
        diagnose: Diagnosis | None = None,
    ) -> None:
        self._cluster = cluster
        self._agent = agent
        self._token = token
        self._first_answer_timeout = first_answer_timeout
        self._diagnose = diagnose
        self._answered = False
        self._primed: ClientConnection | None = None
        self._lock = threading.Lock()
        self._open: list[Any] = []
        self.connections = 0
        """How many websockets this connector opened (each over its own port-forward)."""

    async def prime(self) -> None:
        """Open the first connection now (startup waits until the agent answers); the stream
        gets it on its first call."""
        self._primed = await self(FIRST_PATH)

    async def __call__(self, path: str) -> ClientConnection:
        primed, self._primed = self._primed, None
        if primed is not None:
            if path == FIRST_PATH and primed.state is State.OPEN:
                return primed
            await primed.close()
        if self._answered:
            try:
                return await self._connect_once(path)
            except (OSError, InvalidHandshake, EOFError, TimeoutError):
                await self._raise_if_agent_failed()
                raise
        # Until the agent first answers, a refused port-forward only means "not listening
        # yet": keep trying quietly rather than reporting the stream as broken.
        deadline = time.monotonic() + self._first_answer_timeout
        while True:
            try:
                websocket = await self._connect_once(path)
            except (OSError, InvalidHandshake, EOFError, TimeoutError):
                await self._raise_if_agent_failed()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(FIRST_ANSWER_RETRY)
                continue
            self._answered = True
            return websocket

    async def _raise_if_agent_failed(self) -> None:
        if self._diagnose is None:
            return
        loop = asyncio.get_running_loop()
        verdict = await loop.run_in_executor(_OPENING, self._diagnose)
        if verdict is not None:
            state, sentence = verdict
            raise StreamEnded(sentence, "gone" if state == "gone" else "failed")

    async def _connect_once(self, path: str) -> ClientConnection:
        forward = await asyncio.get_running_loop().run_in_executor(_OPENING, self._port_forward)
        raw = forward.socket(self._agent.port)._socket
        raw.setblocking(False)
        try:
            websocket = await connect(
                "ws://podtap-agent" + path,
                sock=raw,
                additional_headers=bearer_headers(self._token),
                open_timeout=10,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
                ping_interval=20,
                ping_timeout=20,
            )
        except InvalidStatus:
            forward.close()
            raise
        except (OSError, InvalidHandshake, EOFError, TimeoutError) as error:
            forward.close()
            refused = forward.error(self._agent.port)
            if refused:
                raise ConnectionRefusedError(refused.strip()) from error
            raise
        self.connections += 1
        return websocket

    def _port_forward(self) -> Any:
        agent = self._agent
        # The client's port-forward swaps the transport of the ApiClient it is given while it
        # connects: on the shared one, concurrent API calls from other threads would go out as
        # websocket upgrades. Each port-forward gets its own (the websocket does not use it).
        api = client.ApiClient(self._cluster.api.configuration)
        try:
            forward = portforward(
                client.CoreV1Api(api).connect_get_namespaced_pod_portforward,
                agent.pod,
                agent.namespace,
                ports=str(agent.port),
            )
        except ApiException as error:
            message = status_message(error)
            if error.status == 403 or "403" in message or "forbidden" in message.lower():
                raise StreamEnded(
                    f"Your Kubernetes user may not port-forward to "
                    f"{agent.namespace}/{agent.pod}: {message}.",
                ) from None
            if error.status == 404 or "404" in message:
                raise StreamEnded(
                    f"The agent pod {agent.namespace}/{agent.pod} is gone.", "gone"
                ) from None
            raise ConnectionError(f"port-forward failed: {message}") from None
        finally:
            cast(Any, api).close()
        with self._lock:
            self._open = [f for f in self._open if f.connected] + [forward]
        return forward

    def cut(self) -> int:
        """Break every open port-forward, as a network failure would; returns how many."""
        with self._lock:
            forwards, self._open = [f for f in self._open if f.connected], []
        for forward in forwards:
            sock = getattr(forward.websocket, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        return len(forwards)
