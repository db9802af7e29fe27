"""``KubeSim``: a whole simulated cluster (API server, controllers, kubelet) running on an
event loop in a background thread, with methods tests use to steer it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml  # type: ignore[import-untyped]
from aiohttp import web

from tests.kubesim import objects
from tests.kubesim.apiserver import ApiServer
from tests.kubesim.cluster import Cluster
from tests.kubesim.config import SimConfig
from tests.kubesim.resources import (
    DEPLOYMENT,
    NAMESPACE,
    POD,
    REPLICASET,
    RESOURCES,
    STATEFULSET,
)
from tests.kubesim.seed import expected_pods, node_names, seed
from tests.kubesim.selectors import label_selector
from tests.kubesim.store import Object

T = TypeVar("T")


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    ip: str
    node: str
    phase: str
    ready: bool
    labels: dict[str, str]
    netns: str  # path of the pod's network namespace, "" before it runs


@dataclass(frozen=True)
class ContainerProcess:
    namespace: str
    pod: str
    container: str
    pid: int
    argv: list[str]


def write_kubeconfig(path: Path, server: str, user: str, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": "kubesim", "cluster": {"server": server}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "kubesim",
                "context": {"cluster": "kubesim", "user": user, "namespace": "default"},
            },
            {
                "name": "kubesim-other",
                "context": {"cluster": "kubesim", "user": user, "namespace": "other"},
            },
        ],
        "current-context": "kubesim",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _is_ready(pod: Object) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


class KubeSim:
    """Use as a context manager: on entry every seeded pod is Ready and ``kubeconfig`` points
    the official client at the cluster; on exit every process, namespace and cgroup is gone."""

    def __init__(self, config: SimConfig, kubeconfig: Path | None = None) -> None:
        self.config = config
        self._workdir = Path(tempfile.mkdtemp(prefix=f"kubesim{os.getpid()}-"))
        self.kubeconfig = kubeconfig or self._workdir / "kubeconfig"
        self.cluster = Cluster(
            nodes=node_names(config.nodes),
            log_dir=self._workdir,
            user=config.user,
            failing_images=list(config.fail_images),
        )
        for rule in config.deny:
            self.cluster.rbac.deny(rule)
        self.api = ApiServer(self.cluster)
        self.server_url = ""
        self._loop = asyncio.new_event_loop()
        # Starting a pod makes blocking calls (ip, cgroup files) in threads: with asyncio's
        # default of a few threads, 20 agent pods started at once waited on each other.
        self._loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="kubesim")
        )
        self._thread = threading.Thread(target=self._loop.run_forever, name="kubesim", daemon=True)
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> KubeSim:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, ready_timeout: float | None = None) -> None:
        """``ready_timeout``: by default a minute, and a second more per seeded pod (each is
        a namespace and a process to start, on a machine that may be busy)."""
        self._thread.start()
        try:
            self._run(self._start())
            write_kubeconfig(self.kubeconfig, self.server_url, self.config.user, self.cluster.token)
            self.wait_ready(ready_timeout or 60.0 + expected_pods(self.config))
        except BaseException:
            self.stop()
            raise

    async def _start(self) -> None:
        self.cluster.start()
        self._runner = web.AppRunner(self.api.app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.config.api_port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.api.address = f"127.0.0.1:{port}"
        self.server_url = f"http://127.0.0.1:{port}"
        seed(self.cluster.store, self.config)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._run(self._stop(), timeout=60)
        except Exception:  # keep tearing down; the sweep at the next start catches the rest
            traceback.print_exc()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    async def _stop(self) -> None:
        self.cluster.store.close_watches()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.cluster.stop()

    # -- running things on the cluster's loop ------------------------------------------------

    def _run(self, coroutine: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def call(self, function: Callable[[], T], timeout: float = 30.0) -> T:
        """Run ``function`` on the cluster's loop (the store is not thread-safe)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as error:
                future.set_exception(error)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"kubesim: timed out waiting for {what}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the seeded pods are all Ready (pods with failing images excepted)."""
        kubelet = self.cluster.kubelet

        def settled() -> bool:
            pods = self.call(lambda: self.cluster.store.list(POD))
            healthy = [
                p
                for p in pods
                if not any(kubelet.image_fails(c["image"]) for c in p["spec"]["containers"])
            ]
            failing = len(pods) - len(healthy)
            return len(pods) >= expected_pods(self.config) and sum(
                1 for p in healthy if _is_ready(p)
            ) + failing >= expected_pods(self.config)

        self.wait_for(settled, timeout, "every seeded pod to be ready")

    # -- reading -----------------------------------------------------------------------------

    def pods(self, namespace: str | None = None, selector: str | None = None) -> list[PodInfo]:
        matches = label_selector(selector)

        def collect() -> list[PodInfo]:
            found = []
            for pod in self.cluster.store.list(POD, namespace):
                meta, status = pod["metadata"], pod.get("status") or {}
                if not matches(meta.get("labels") or {}):
                    continue
                runtime = self.cluster.kubelet.runtimes.get(meta["uid"])
                netns = runtime.netns.path if runtime and runtime.netns else ""
                found.append(
                    PodInfo(
                        meta["namespace"],
                        meta["name"],
                        status.get("podIP", ""),
                        pod["spec"].get("nodeName", ""),
                        status.get("phase", ""),
                        _is_ready(pod),
                        dict(meta.get("labels") or {}),
                        netns,
                    )
                )
            return found

        return self.call(collect)

    def get(self, plural: str, namespace: str | None, name: str) -> Object | None:
        """An object as stored, by resource name (``pods``, ``jobs``...), or None."""
        rt = next(r for r in RESOURCES if r.plural == plural)
        return self.call(lambda: self.cluster.store.get(rt, namespace, name))

    def processes(self) -> list[ContainerProcess]:
        def collect() -> list[ContainerProcess]:
            found = []
            for pod, container, pid in self.cluster.kubelet.processes():
                try:
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                argv = [part.decode() for part in raw.split(b"\0") if part]
                found.append(
                    ContainerProcess(
                        pod["metadata"]["namespace"], pod["metadata"]["name"], container, pid, argv
                    )
                )
            return found

        return self.call(collect)

    def agent_processes(self) -> list[ContainerProcess]:
        """Container processes of podtap's agent: ``podtap agent`` from an image with podtap,
        or the zipapp a ConfigMap delivers to a stock Python image."""
        return [
            p
            for p in self.processes()
            if (len(p.argv) >= 4 and p.argv[1:3] == ["-m", "tui"] and p.argv[3] == "agent")
            or any(part.endswith("/agent.pyz") for part in p.argv[1:3])
        ]

    # -- steering ----------------------------------------------------------------------------

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        def change() -> None:
            store = self.cluster.store
            for rt in (DEPLOYMENT, STATEFULSET, REPLICASET):
                obj = store.get(rt, namespace, name)
                if obj is not None:
                    obj["spec"]["replicas"] = replicas
                    store.update(rt, obj)
                    return
            raise KeyError(f"no deployment, statefulset or replicaset {namespace}/{name}")

        self.call(change)

    def cut_port_forwards(self, namespace: str | None = None, pod: str | None = None) -> int:
        """Abort the open port-forward connections (to ``pod`` only, if given)."""
        return self.call(lambda: self.cluster.cut_port_forwards(namespace, pod))

    def compact(self) -> None:
        """Compact the history: watches resuming from an older resourceVersion get 410."""
        self.call(self.cluster.store.compact)

    def hold(self, rule: str, seconds: float) -> None:
        """Handle requests of ``VERB:RESOURCE`` (e.g. ``create:jobs``) only after ``seconds``,
        as a busy API server would: what the client does meanwhile can be seen."""
        self.call(lambda: self.api.held.__setitem__(rule, seconds))

    def deny(self, rule: str) -> None:
        self.call(lambda: self.cluster.rbac.deny(rule))

    def allow(self, rule: str) -> None:
        self.call(lambda: self.cluster.rbac.allow(rule))

    def fail_image(self, pattern: str) -> None:
        self.call(lambda: self.cluster.failing_images.append(pattern))

    def heal_image(self, pattern: str) -> None:
        self.call(lambda: self.cluster.failing_images.remove(pattern))

    def label_namespace(self, namespace: str, labels: dict[str, str | None]) -> None:
        def change() -> None:
            store = self.cluster.store
            ns = store.get(NAMESPACE, None, namespace)
            if ns is None:
                ns = objects.create(store, NAMESPACE, {"metadata": {"name": namespace}})
            current = ns["metadata"].setdefault("labels", {})
            for key, value in labels.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            store.update(NAMESPACE, ns)

        self.call(change)
