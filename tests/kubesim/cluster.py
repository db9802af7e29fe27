"""The simulated cluster's state and control loop: store, RBAC, kubelet, controllers, and the
coalesced reconcile pass that runs after every change (and on a short tick for timers)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kubesim.admission import Rbac
from tests.kubesim.controllers import Controllers
from tests.kubesim.kubelet import Kubelet
from tests.kubesim.network import PodNetwork
from tests.kubesim.store import Change, Store

TICK_SECONDS = 0.5


@dataclass
class Cluster:
    nodes: list[str]
    log_dir: Path
    user: str = "podtap-test"
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    failing_images: list[str] = field(default_factory=list)
    store: Store = field(default_factory=Store)
    network: PodNetwork = field(default_factory=PodNetwork)

    def __post_init__(self) -> None:
        self.rbac = Rbac(user=self.user)
        self.controllers = Controllers(self.store, self.nodes)
        self.kubelet = Kubelet(
            self.store, self.network, self.nodes, self.log_dir, self.failing_images
        )
        # Open port-forward streams: their connections and pods, so tests can cut them.
        self.port_forwards: dict[int, tuple[Any, str, str]] = {}
        self._pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.network.start()
        self.store.listen(self._on_change)
        self._ticker = asyncio.create_task(self._tick())

    def _on_change(self, change: Change) -> None:
        if not self._pending and self._loop is not None:
            self._pending = True
            self._loop.call_soon(self._reconcile)

    def _reconcile(self) -> None:
        self._pending = False
        try:
            self.controllers.reconcile()
            self.kubelet.sync()
        except Exception:  # a controller bug must not stop the cluster; show it
            traceback.print_exc()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self._reconcile()

    def cut_port_forwards(self, namespace: str | None = None, name: str | None = None) -> int:
        """Drop open port-forward connections without a goodbye, as a broken network or an API
        server restart does; returns how many were cut."""
        cut = 0
        for key, (transport, pod_namespace, pod_name) in list(self.port_forwards.items()):
            if namespace in (None, pod_namespace) and name in (None, pod_name):
                if transport is not None:
                    transport.abort()
                self.port_forwards.pop(key, None)
                cut += 1
        return cut

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.store.close_watches()
        self._loop = None  # no more reconciles while the kubelet tears down
        await self.kubelet.stop_all()
        await asyncio.to_thread(self.network.stop)
