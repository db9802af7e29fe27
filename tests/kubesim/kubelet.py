"""The kubelet of every simulated node: runs each bound pod as real processes in a real network
namespace, each container in its own cgroup, and reports pod status back to the store."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import os
import secrets
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kubesim import cgroups
from tests.kubesim.network import PodNetns, PodNetwork
from tests.kubesim.objects import record_event
from tests.kubesim.resources import POD
from tests.kubesim.store import Object, Store, now_rfc3339

REPO_ROOT = Path(__file__).resolve().parents[2]
# Join the container's cgroups, then become the container's command (same pid throughout).
_LAUNCH = ('for d in $KUBESIM_CGROUPS; do echo $$ > "$d/cgroup.procs"; done; '
           'unset KUBESIM_CGROUPS; exec "$@"')
# Graceful shutdown waits at most this long, whatever terminationGracePeriodSeconds says,
# so that tests stay fast; SIGKILL follows.
MAX_GRACE_SECONDS = 5.0
RESTART_BACKOFF_SECONDS = 1.0
IMAGE_PULL_RETRY_SECONDS = 1.0


def container_command(pod: Object, spec: dict[str, Any]) -> list[str]:
    """What the container runs: ``podtap`` is podtap's own CLI from this checkout; an image's
    default entrypoint is the simulated workload server on the container's ports."""
    command = list(spec.get("command") or [])
    args = [str(arg) for arg in spec.get("args") or []]
    if not command:
        ports = [str(p["containerPort"]) for p in spec.get("ports") or []]
        return [sys.executable, "-m", "tests.kubesim.podserver", pod["metadata"]["name"],
                *ports, *args]
    if command[0] == "podtap":
        return [sys.executable, "-m", "tui", *command[1:], *args]
    return [*command, *args]


def image_id(image: str) -> str:
    """The resolved reference containerd reports: registry/repository@sha256:digest."""
    digest = hashlib.sha256(image.encode()).hexdigest()
    repository = image.split("@")[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository[: -len(last)] + last.split(":")[0]
    first = repository.split("/")[0]
    if "/" not in repository:
        repository = f"docker.io/library/{repository}"
    elif "." not in first and ":" not in first and first != "localhost":
        repository = f"docker.io/{repository}"
    return f"{repository}@sha256:{digest}"


@dataclass
class ContainerRun:
    spec: dict[str, Any]
    ephemeral: bool
    container_id: str = field(default_factory=lambda: secrets.token_hex(32))
    cgroup_dirs: list[Path] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    ran: bool = False  # has started at least once (a pod stays Running through back-off)
    ready: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self) -> dict[str, Any]:
        image = self.spec.get("image", "")
        status: dict[str, Any] = {
            "name": self.name, "image": image, "imageID": "", "ready": self.ready,
            "restartCount": self.restart_count, "state": self.state,
            "lastState": self.last_state, "started": "running" in self.state,
        }
        if "waiting" not in self.state or self.restart_count:
            status["containerID"] = f"containerd://{self.container_id}"
            status["imageID"] = image_id(image)
        return status


class PodRuntime:
    def __init__(self, kubelet: Kubelet, pod: Object) -> None:
        self.kubelet = kubelet
        self.namespace = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.qos_class = pod["status"].get("qosClass", "BestEffort")
        self.restart_policy = pod["spec"].get("restartPolicy", "Always")
        self.netns: PodNetns | None = None
        self.containers: dict[str, ContainerRun] = {
            c["name"]: ContainerRun(c, ephemeral=False) for c in pod["spec"]["containers"]
        }
        self.stopping = False
        self.started = asyncio.Event()
        self.task = asyncio.create_task(self._run(pod), name=f"pod {self.name}")

    async def _run(self, pod: Object) -> None:
        self.netns = await asyncio.to_thread(self.kubelet.network.attach, self.name[:20])
        self.publish(start=True)
        self.started.set()
        for run in self.containers.values():
            run.task = asyncio.create_task(self._keep_running(run))
        self.sync_ephemeral(pod)

    def sync_ephemeral(self, pod: Object) -> None:
        if not self.started.is_set() or self.stopping:
            return
        for spec in pod["spec"].get("ephemeralContainers") or []:
            if spec["name"] not in self.containers:
                run = ContainerRun(spec, ephemeral=True)
                self.containers[spec["name"]] = run
                run.task = asyncio.create_task(self._keep_running(run))

    async def _keep_running(self, run: ContainerRun) -> None:
        while not self.stopping:
            if not await self._pull(run):
                return
            exit_code = await self._run_once(run)
            if self.stopping:
                return
            restart = not run.ephemeral and (
                self.restart_policy == "Always"
                or (self.restart_policy == "OnFailure" and exit_code != 0))
            if not restart:
                return
            run.last_state = {"terminated": run.state["terminated"]}
            run.state = {"waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {RESTART_BACKOFF_SECONDS:g}s restarting failed "
                           f"container={run.name} pod={self.name}_{self.namespace}({self.uid})"}}
            self.publish()
            await asyncio.sleep(RESTART_BACKOFF_SECONDS)
            run.restart_count += 1
            run.container_id = secrets.token_hex(32)

    async def _pull(self, run: ContainerRun) -> bool:
        image = run.spec.get("image", "")
        if not self.kubelet.image_fails(image):
            return True
        reason = "ErrImagePull"
        while not self.stopping:
            if reason == "ErrImagePull":
                message = (f'failed to pull and unpack image "{image}": failed to resolve '
                           f'reference "{image}": pull access denied, repository does not exist '
                           f'or may require authorization')
                self.kubelet.event(self, "Warning", "Failed",
                                   f'Failed to pull image "{image}": {message}')
            else:
                message = f'Back-off pulling image "{image}"'
                self.kubelet.event(self, "Normal", "BackOff", message)
            run.state = {"waiting": {"reason": reason, "message": message}}
            self.publish()
            await asyncio.sleep(IMAGE_PULL_RETRY_SECONDS)
            reason = "ImagePullBackOff" if reason == "ErrImagePull" else "ErrImagePull"
            if not self.kubelet.image_fails(image):
                return True
        return False

    async def _run_once(self, run: ContainerRun) -> int:
        assert self.netns is not None
        pod = self.kubelet.store.get(POD, self.namespace, self.name) or {}
        run.cgroup_dirs = await asyncio.to_thread(
            cgroups.create_container_cgroups, self.qos_class, self.uid, run.container_id)
        env = self._environment(pod, run)
        log = await asyncio.to_thread(os.open, self.kubelet.log_path(self, run.name),
                                      os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            run.process = await asyncio.create_subprocess_exec(
                "nsenter", f"--net={self.netns.path}", "--", "sh", "-c", _LAUNCH, "sh",
                *container_command(pod, run.spec),
                env=env, cwd=REPO_ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=log,
                stderr=log, start_new_session=True)
        finally:
            os.close(log)
        run.state = {"running": {"startedAt": now_rfc3339()}}
        run.ran = True
        self.kubelet.event(self, "Normal", "Started", f"Started container {run.name}")
        self.publish()
        probe = asyncio.create_task(self._probe_ready(run))
        exit_code = await run.process.wait()
        probe.cancel()
        signal_number = -exit_code if exit_code < 0 else 0
        exit_code = 128 + signal_number if signal_number else exit_code
        run.ready = False
        run.state = {"terminated": {
            "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": run.state.get("running", {}).get("startedAt"),
            "finishedAt": now_rfc3339(), "containerID": f"containerd://{run.container_id}",
        }}
        if signal_number:
            run.state["terminated"]["signal"] = signal_number
        await asyncio.to_thread(cgroups.kill_and_remove, run.cgroup_dirs)
        if not self.stopping:
            self.publish()
        return exit_code

    def _environment(self, pod: Object, run: ContainerRun) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": "/root",
            "HOSTNAME": self.name,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBESIM_CGROUPS": " ".join(str(d) for d in run.cgroup_dirs),
        }
        fields = {
            "metadata.name": self.name, "metadata.namespace": self.namespace,
            "metadata.uid": self.uid, "spec.nodeName": pod.get("spec", {}).get("nodeName", ""),
            "status.podIP": self.netns.ip if self.netns else "",
            "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName", "default"),
        }
        for item in run.spec.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "fieldRef" in (item.get("valueFrom") or {}):
                env[item["name"]] = fields.get(item["valueFrom"]["fieldRef"]["fieldPath"], "")
        return env

    async def _probe_ready(self, run: ContainerRun) -> None:
        """Ready once every declared port (or the readiness probe's port) accepts."""
        assert self.netns is not None
        probe = run.spec.get("readinessProbe") or {}
        probe_port = (probe.get("tcpSocket") or probe.get("httpGet") or {}).get("port")
        ports = [probe_port] if isinstance(probe_port, int) else [
            p["containerPort"] for p in run.spec.get("ports") or []]
        for port in ports:
            while True:
                try:
                    _, writer = await asyncio.wait_for(
                        asyncio.open_connection(self.netns.ip, port), 1.0)
                    writer.close()
                    break
                except (OSError, TimeoutError):
                    await asyncio.sleep(0.05)
        run.ready = True
        self.publish()

    def phase(self) -> str:
        regular = [run for run in self.containers.values() if not run.ephemeral]
        states = [next(iter(run.state)) for run in regular]
        if any(state == "waiting" for state in states) and not any(run.ran for run in regular):
            return "Pending"
        if all(state == "terminated" for state in states) and self.restart_policy != "Always":
            codes = [run.state["terminated"]["exitCode"] for run in regular]
            if all(code == 0 for code in codes):
                return "Succeeded"
            if self.restart_policy == "Never":
                return "Failed"
        return "Running"

    def publish(self, start: bool = False) -> None:
        """Write the pod's status as the kubelet's status manager would."""
        store = self.kubelet.store
        pod = store.get(POD, self.namespace, self.name)
        if pod is None or pod["metadata"]["uid"] != self.uid:
            return
        status = pod.setdefault("status", {})
        phase = self.phase()
        regular = [run for run in self.containers.values() if not run.ephemeral]
        ready = all(run.ready for run in regular) and phase == "Running"
        stamp = now_rfc3339()
        if start:
            status.update({"hostIP": self.kubelet.node_ip, "startTime": stamp,
                           "hostIPs": [{"ip": self.kubelet.node_ip}]})
            if self.netns is not None:
                status.update({"podIP": self.netns.ip, "podIPs": [{"ip": self.netns.ip}]})
        previous = {c["type"]: c for c in status.get("conditions") or []}

        def condition(kind: str, value: bool) -> dict[str, Any]:
            text = "True" if value else "False"
            old = previous.get(kind)
            changed = old is None or old.get("status") != text
            entry: dict[str, Any] = {
                "type": kind, "status": text, "lastProbeTime": None,
                "lastTransitionTime": stamp if changed or old is None
                else old.get("lastTransitionTime")}
            if not value and kind in ("Ready", "ContainersReady"):
                waiting = [r.name for r in regular if not r.ready]
                entry["reason"] = ("PodCompleted" if phase in ("Succeeded", "Failed")
                                   else "ContainersNotReady")
                entry["message"] = f"containers with unready status: [{' '.join(waiting)}]"
            return entry

        status["phase"] = phase
        status["conditions"] = [
            condition("PodReadyToStartContainers", True), condition("Initialized", True),
            condition("Ready", ready), condition("ContainersReady", ready),
            condition("PodScheduled", True)]
        status["containerStatuses"] = [run.status() for run in regular]
        ephemeral = [run.status() for run in self.containers.values() if run.ephemeral]
        if ephemeral:
            status["ephemeralContainerStatuses"] = ephemeral
        store.update(POD, pod)

    async def stop(self, grace_seconds: float) -> None:
        self.stopping = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        processes = [run.process for run in self.containers.values()
                     if run.process is not None and run.process.returncode is None]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        if processes:
            _, pending = await asyncio.wait(
                [asyncio.create_task(p.wait()) for p in processes],
                timeout=min(grace_seconds, MAX_GRACE_SECONDS))
            for process in processes:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
            for waiter in pending:
                await waiter
        for run in self.containers.values():
            if run.task is not None:
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run.task
            await asyncio.to_thread(cgroups.kill_and_remove, run.cgroup_dirs)
        if self.netns is not None:
            await asyncio.to_thread(self.kubelet.network.detach, self.netns)


class Kubelet:
    """One kubelet for all simulated nodes: they share this host, so they share one loop."""

    def __init__(self, store: Store, network: PodNetwork, nodes: list[str], log_dir: Path,
                 failing_images: list[str]) -> None:
        self.store = store
        self.network = network
        self.nodes = set(nodes)
        self.node_ip = network.gateway
        self.log_dir = log_dir
        self.failing_images = failing_images
        self.runtimes: dict[str, PodRuntime] = {}
        self._stopping: dict[str, asyncio.Task[None]] = {}

    def image_fails(self, image: str) -> bool:
        return any(pattern in image or fnmatch.fnmatch(image, pattern)
                   for pattern in self.failing_images)

    def log_path(self, runtime: PodRuntime, container: str) -> Path:
        return self.log_dir / f"{runtime.namespace}_{runtime.name}_{runtime.uid}_{container}.log"

    def container_log(self, pod: Object, container: str) -> bytes:
        meta = pod["metadata"]
        path = self.log_dir / f"{meta['namespace']}_{meta['name']}_{meta['uid']}_{container}.log"
        return path.read_bytes() if path.exists() else b""

    def is_running(self, pod: Object, container: str) -> bool:
        runtime = self.runtimes.get(pod["metadata"]["uid"])
        run = runtime.containers.get(container) if runtime is not None else None
        return run is not None and (run.process is None or run.process.returncode is None) and (
            not runtime.stopping if runtime is not None else False)

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
            if node not in self.nodes:
                self._unschedulable(pod)
                continue
            runtime = self.runtimes.get(uid)
            if meta.get("deletionTimestamp"):
                if uid not in self._stopping:
                    grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                    self._stopping[uid] = asyncio.create_task(self._terminate(pod, grace))
                continue
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
        pod["status"]["conditions"] = [*conditions, {
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "lastProbeTime": None, "lastTransitionTime": now_rfc3339(),
            "message": f'0/{len(self.nodes)} nodes are available: node '
                       f'"{pod["spec"]["nodeName"]}" not found.'}]
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
                current = self.store.get(POD, pod["metadata"]["namespace"],
                                         pod["metadata"]["name"])
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
                    found.append((pod, run.name, run.process.pid))
        return found
