"""The kubelet of every simulated node: runs each bound pod as real processes in a real network
namespace (see pod_runtime), stops pods being deleted, and marks pods bound to unknown nodes."""

from __future__ import annotations

import asyncio
import fnmatch
from pathlib import Path

from tests.kubesim.containers import main_pid
from tests.kubesim.network import PodNetwork
from tests.kubesim.objects import record_event
from tests.kubesim.pod_runtime import PodRuntime
from tests.kubesim.resources import POD
from tests.kubesim.store import Object, Store, now_rfc3339


class Kubelet:
    """One kubelet for all simulated nodes: they share this host, so they share one loop."""

    def __init__(
        self,
        store: Store,
        network: PodNetwork,
        nodes: list[str],
        log_dir: Path,
        failing_images: list[str],
    ) -> None:
        self.store = store
        self.network = network
        self.nodes = set(nodes)
        self.node_ip = network.gateway
        self.log_dir = log_dir
        self.failing_images = failing_images
        self.runtimes: dict[str, PodRuntime] = {}
        self._stopping: dict[str, asyncio.Task[None]] = {}

    def image_fails(self, image: str) -> bool:
        return any(
            pattern in image or fnmatch.fnmatch(image, pattern) for pattern in self.failing_images
        )

    def log_path(self, runtime: PodRuntime, container: str) -> Path:
        return self.log_dir / f"{runtime.namespace}_{runtime.name}_{runtime.uid}_{container}.log"

    def container_log(self, pod: Object, container: str) -> bytes:
        meta = pod["metadata"]
        path = self.log_dir / f"{meta['namespace']}_{meta['name']}_{meta['uid']}_{container}.log"
        return path.read_bytes() if path.exists() else b""

    def is_running(self, pod: Object, container: str) -> bool:
        runtime = self.runtimes.get(pod["metadata"]["uid"])
        run = runtime.containers.get(container) if runtime is not None else None
        return (
            run is not None
            and (run.process is None or run.process.returncode is None)
            and (not runtime.stopping if runtime is not None else False)
        )

    def event(self, runtime: PodRuntime, kind: str, reason: str, message: str) -> None:
        pod = self.store.get(POD, runtime.namespace, runtime.name)
        if pod is not None:
            record_event(self.store, pod, kind, reason, message, "kubelet")

    def sync(self) -> None:
        """Level-triggered: make the running pods match the bound pods in the store."""
        present = set()
        for pod in self.store.list(POD):
            meta, spec = pod["metadata"], pod["spec"]
            uid, node = meta["uid"], spec.get("nodeName")
            present.add(uid)
            if not node:
                continue
            if meta.get("deletionTimestamp"):
                if uid not in self._stopping:
                    grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                    self._stopping[uid] = asyncio.create_task(self._terminate(pod, grace))
                continue
            if node not in self.nodes:
                self._unschedulable(pod)
                continue
            runtime = self.runtimes.get(uid)
            if runtime is None and pod["status"].get("phase") not in ("Succeeded", "Failed"):
                self.runtimes[uid] = PodRuntime(self, pod)
            elif runtime is not None:
                runtime.sync_ephemeral(pod)
        for uid in list(self.runtimes):
            if uid not in present and uid not in self._stopping:
                self._stopping[uid] = asyncio.create_task(self._terminate(None, 0, uid))

    def _unschedulable(self, pod: Object) -> None:
        conditions = pod["status"].get("conditions") or []
        if any(c["type"] == "PodScheduled" for c in conditions):
            return
        pod["status"]["conditions"] = [
            *conditions,
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
                "message": f"0/{len(self.nodes)} nodes are available: node "
                f'"{pod["spec"]["nodeName"]}" not found.',
            },
        ]
        self.store.update(POD, pod)

    async def _terminate(self, pod: Object | None, grace: float, uid: str = "") -> None:
        uid = pod["metadata"]["uid"] if pod is not None else uid
        runtime = self.runtimes.pop(uid, None)
        try:
            if runtime is not None:
                await runtime.stop(grace)
        finally:
            self._stopping.pop(uid, None)
            if pod is not None:
                current = self.store.get(POD, pod["metadata"]["namespace"], pod["metadata"]["name"])
                if current is not None and current["metadata"]["uid"] == uid:
                    self.store.remove(POD, pod["metadata"]["namespace"], pod["metadata"]["name"])

    async def stop_all(self) -> None:
        for uid in list(self.runtimes):
            if uid not in self._stopping:
                self._stopping[uid] = asyncio.create_task(self._terminate(None, 0, uid))
        await asyncio.gather(*self._stopping.values(), return_exceptions=True)

    def processes(self) -> list[tuple[Object, str, int]]:
        """(pod, container name, pid) of every running container process."""
        found = []
        for runtime in self.runtimes.values():
            pod = self.store.get(POD, runtime.namespace, runtime.name)
            for run in runtime.containers.values():
                if pod and run.process is not None and run.process.returncode is None:
                    found.append((pod, run.name, main_pid(run.process.pid)))
        return found
