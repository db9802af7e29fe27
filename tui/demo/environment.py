"""The whole demo as one context manager: network, service and traffic, up and then gone.

    with DemoEnvironment(on_call=print) as demo:
        ...  # demo.target is netns/podtap-demo-PID, serving demo.ports at demo.service_ip

Leaving the block (normally, by an exception, Ctrl+C) stops the traffic, stops the service and
removes the namespace and veth pair. The service also dies with this process if it is killed
outright, and the next demo removes the network such a demo left behind. (Linux ties that to
the thread that started the service: enter the environment from a thread that outlives it.)
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from agent.errors import UserError
from tui.demo import network
from tui.demo.network import DemoNetwork
from tui.demo.service_traffic import ServicePorts
from tui.demo.traffic import ClientCall, TrafficGenerator
from tui.targets import LocalTarget

HTTP_PORT = 8080
CACHE_PORT = 7000
TLS_PORT = 8443
SERVICE_PORTS = ServicePorts(grpc=50051, h2c=8081, chat=8765)
PORTS = [HTTP_PORT, CACHE_PORT, TLS_PORT, SERVICE_PORTS.grpc, SERVICE_PORTS.h2c, SERVICE_PORTS.chat]

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def check_can_run() -> None:
    if os.geteuid() != 0:
        raise UserError("podtap demo needs root to create a network namespace: run it with sudo.")
    if shutil.which("ip") is None:
        raise UserError("podtap demo needs the ip command: install iproute2.")


class DemoEnvironment:
    """A demo shop in its own network namespace, with clients on the host calling it."""

    def __init__(
        self,
        *,
        on_call: Callable[[ClientCall], None] | None = None,
        traffic: bool = True,
        pace: float = 1.0,
        ready_timeout: float = 15.0,
    ) -> None:
        self.network = DemoNetwork.for_pid(os.getpid())
        self.ports = list(PORTS)
        self._on_call = on_call
        self._traffic = traffic
        self._pace = pace
        self._ready_timeout = ready_timeout
        self._service: subprocess.Popen[bytes] | None = None
        self._service_log: IO[bytes] | None = None
        self.generator: TrafficGenerator | None = None

    @property
    def name(self) -> str:
        return self.network.name

    @property
    def service_ip(self) -> str:
        return self.network.service_ip

    @property
    def target(self) -> LocalTarget:
        return LocalTarget("netns", self.network.name)

    @property
    def service_pid(self) -> int | None:
        return self._service.pid if self._service else None

    def __enter__(self) -> Self:
        check_can_run()
        network.remove_stale()
        if network.exists(self.network):
            raise UserError(f"A demo is already running in this process ({self.name}).")
        try:
            network.create(self.network)
            self._start_service()
            if self._traffic:
                self.start_traffic()
        except BaseException:
            self.close()
            raise
        return self

    def start_traffic(self) -> None:
        """Start the clients (done on entry unless ``traffic=False``)."""
        if self.generator is None:
            self.generator = TrafficGenerator(
                self.service_ip,
                http_port=HTTP_PORT,
                cache_port=CACHE_PORT,
                tls_port=TLS_PORT,
                service_ports=SERVICE_PORTS,
                on_call=self._on_call or (lambda call: None),
                pace=self._pace,
            )
            self.generator.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop everything and remove the network; safe to call more than once."""
        # A second Ctrl+C must not cut the cleanup short: hold signals until it is done.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            if self.generator is not None:
                self.generator.stop()
                self.generator = None
            self._stop_service()
            network.remove(self.network)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def _start_service(self) -> None:
        argv = [
            sys.executable, "-m", "tui.demo.service",
            "--http-port", str(HTTP_PORT),
            "--cache-port", str(CACHE_PORT),
            "--tls-port", str(TLS_PORT),
            "--grpc-port", str(SERVICE_PORTS.grpc),
            "--h2c-port", str(SERVICE_PORTS.h2c),
            "--chat-port", str(SERVICE_PORTS.chat),
        ]  # fmt: skip
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        # Kept open for the service's life: its last words explain a failed start.
        self._service_log = tempfile.TemporaryFile()  # noqa: SIM115
        # Its own session: the terminal's Ctrl+C reaches podtap, which stops the service itself.
        self._service = subprocess.Popen(
            self.network.exec_argv(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._service_log,
            env=env,
            start_new_session=True,
        )
        self._wait_until_ready(self._service)

    def _wait_until_ready(self, service: subprocess.Popen[bytes]) -> None:
        assert service.stdout is not None
        deadline = time.monotonic() + self._ready_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([service.stdout], [], [], remaining)
            if not readable:
                break
            line = service.stdout.readline()
            if line.strip() == b"ready":
                return
            if not line:  # it exited
                break
        raise UserError(f"The demo service did not start: {self._service_error()}")

    def _service_error(self) -> str:
        if self._service_log is None:
            return "no output"
        self._service_log.seek(0)
        lines = self._service_log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def _stop_service(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            if service.poll() is None:
                service.terminate()
                try:
                    service.wait(3.0)
                except subprocess.TimeoutExpired:
                    service.kill()
                    service.wait()
            if service.stdout is not None:
                service.stdout.close()
        if self._service_log is not None:
            self._service_log.close()
            self._service_log = None
