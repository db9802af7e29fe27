"""One pod on a node: its network namespace, its containers' processes and cgroups, image pulls,
restarts and readiness, and the pod status it reports."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
from typing import TYPE_CHECKING, Any

from tests.kubesim import cgroups
from tests.kubesim.containers import (
    REPO_ROOT,
    ContainerRun,
    container_command,
    in_own_pid_namespace,
    main_pid,
    with_mounts,
)
from tests.kubesim.network import PodNetns
from tests.kubesim.resources import CONFIGMAP, POD, SECRET
from tests.kubesim.store import Object, now_rfc3339

if TYPE_CHECKING:
    from tests.kubesim.kubelet import Kubelet

# Join the container's cgroups, then become the container's command (same pid throughout).
_LAUNCH = (
    'for d in $KUBESIM_CGROUPS; do echo $$ > "$d/cgroup.procs"; done; '
    'unset KUBESIM_CGROUPS; exec "$@"'
)
# Graceful shutdown waits at most this long, whatever terminationGracePeriodSeconds says,
# so that tests stay fast; SIGKILL follows.
MAX_GRACE_SECONDS = 5.0
RESTART_BACKOFF_SECONDS = 1.0
IMAGE_PULL_RETRY_SECONDS = 1.0
SECRET_RETRY_SECONDS = 0.2


class MissingSecret(Exception):
    """A Secret or ConfigMap the container needs is not there yet."""


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
        if pod["spec"].get("hostNetwork"):
            self.netns = self.kubelet.network.host()
        else:
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
                or (self.restart_policy == "OnFailure" and exit_code != 0)
            )
            if not restart:
                return
            run.last_state = {"terminated": run.state["terminated"]}
            run.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {RESTART_BACKOFF_SECONDS:g}s restarting failed "
                    f"container={run.name} pod={self.name}_{self.namespace}({self.uid})",
                }
            }
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
                message = (
                    f'failed to pull and unpack image "{image}": failed to resolve '
                    f'reference "{image}": pull access denied, repository does not exist '
                    f"or may require authorization"
                )
                self.kubelet.event(
                    self, "Warning", "Failed", f'Failed to pull image "{image}": {message}'
                )
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
            cgroups.create_container_cgroups, self.qos_class, self.uid, run.container_id
        )
        while True:
            try:
                env = self._environment(pod, run)
                mounts = await asyncio.to_thread(self._volumes, pod, run)
                break
            except MissingSecret as missing:
                run.state = {
                    "waiting": {"reason": "CreateContainerConfigError", "message": str(missing)}
                }
                self.publish()
                await asyncio.sleep(SECRET_RETRY_SECONDS)
                if self.stopping:
                    return 0
        command = container_command(pod, run.spec)
        if not pod.get("spec", {}).get("hostPID"):
            command = in_own_pid_namespace(command)
        command = with_mounts(command, mounts)
        log = await asyncio.to_thread(
            os.open,
            self.kubelet.log_path(self, run.name),
            os.O_WRONLY | os.O_CREAT | os.O_APPEND,
            0o644,
        )
        try:
            run.process = await asyncio.create_subprocess_exec(
                "nsenter",
                f"--net={self.netns.path}",
                "--",
                "sh",
                "-c",
                _LAUNCH,
                "sh",
                *command,
                env=env,
                cwd=REPO_ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
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
        run.state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": run.state.get("running", {}).get("startedAt"),
                "finishedAt": now_rfc3339(),
                "containerID": f"containerd://{run.container_id}",
            }
        }
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
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": pod.get("spec", {}).get("nodeName", ""),
            "status.podIP": self.netns.ip if self.netns else "",
            "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName", "default"),
        }
        for item in run.spec.get("env") or []:
            source = item.get("valueFrom") or {}
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "fieldRef" in source:
                env[item["name"]] = fields.get(source["fieldRef"]["fieldPath"], "")
            elif "secretKeyRef" in source:
                env[item["name"]] = self._secret_value(source["secretKeyRef"])
        return env

    def _volumes(self, pod: Object, run: ContainerRun) -> list[tuple[str, str]]:
        """(mount path, host directory) of each ConfigMap volume the container mounts, its
        keys written as files; the mount path is made on the host if missing (left there,
        empty: other pods of other simulators may be using it)."""
        volumes = {v["name"]: v for v in pod.get("spec", {}).get("volumes") or []}
        mounts = []
        for mount in run.spec.get("volumeMounts") or []:
            source = (volumes.get(mount["name"]) or {}).get("configMap")
            if source is None:
                continue
            configmap = self.kubelet.store.get(CONFIGMAP, self.namespace, source["name"])
            if configmap is None:
                raise MissingSecret(f'configmap "{source["name"]}" not found')
            directory = self.kubelet.log_dir / "volumes" / self.uid / mount["name"]
            directory.mkdir(parents=True, exist_ok=True)
            for key, text in (configmap.get("data") or {}).items():
                (directory / key).write_text(text)
            for key, data in (configmap.get("binaryData") or {}).items():
                (directory / key).write_bytes(base64.b64decode(data))
            os.makedirs(mount["mountPath"], exist_ok=True)
            mounts.append((mount["mountPath"], str(directory)))
        return mounts

    def _secret_value(self, ref: dict[str, Any]) -> str:
        """A Secret's key, as the kubelet resolves it; missing, the container cannot start
        yet (CreateContainerConfigError) and the kubelet tries again."""
        secret = self.kubelet.store.get(SECRET, self.namespace, ref["name"])
        data = (secret or {}).get("data") or {}
        if ref["key"] not in data:
            raise MissingSecret(f'secret "{ref["name"]}" not found')
        return base64.b64decode(data[ref["key"]]).decode()

    async def _probe_ready(self, run: ContainerRun) -> None:
        """Ready once every declared port (or the readiness probe's port) accepts."""
        assert self.netns is not None
        probe = run.spec.get("readinessProbe") or {}
        probe_port = (probe.get("tcpSocket") or probe.get("httpGet") or {}).get("port")
        ports = (
            [probe_port]
            if isinstance(probe_port, int)
            else [p["containerPort"] for p in run.spec.get("ports") or []]
        )
        for port in ports:
            while True:
                try:
                    _, writer = await asyncio.wait_for(
                        asyncio.open_connection(self.netns.ip, port), 1.0
                    )
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
            status.update(
                {
                    "hostIP": self.kubelet.node_ip,
                    "startTime": stamp,
                    "hostIPs": [{"ip": self.kubelet.node_ip}],
                }
            )
            if self.netns is not None:
                status.update({"podIP": self.netns.ip, "podIPs": [{"ip": self.netns.ip}]})
        previous = {c["type"]: c for c in status.get("conditions") or []}

        def condition(kind: str, value: bool) -> dict[str, Any]:
            text = "True" if value else "False"
            old = previous.get(kind)
            changed = old is None or old.get("status") != text
            entry: dict[str, Any] = {
                "type": kind,
                "status": text,
                "lastProbeTime": None,
                "lastTransitionTime": stamp
                if changed or old is None
                else old.get("lastTransitionTime"),
            }
            if not value and kind in ("Ready", "ContainersReady"):
                waiting = [r.name for r in regular if not r.ready]
                entry["reason"] = (
                    "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
                )
                entry["message"] = f"containers with unready status: [{' '.join(waiting)}]"
            return entry

        status["phase"] = phase
        status["conditions"] = [
            condition("PodReadyToStartContainers", True),
            condition("Initialized", True),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", True),
        ]
        status["containerStatuses"] = [run.status() for run in regular]
        ephemeral = [run.status() for run in self.containers.values() if run.ephemeral]
        if ephemeral:
            status["ephemeralContainerStatuses"] = ephemeral
        store.update(POD, pod)

    async def stop(self, grace_seconds: float) -> None:
        self.stopping = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        processes = [
            run.process
            for run in self.containers.values()
            if run.process is not None and run.process.returncode is None
        ]
        # Like a container runtime: SIGTERM to the container's main process, SIGKILL to it once
        # the grace period is over. Signalling the main process rather than the whole group
        # lets the unshare shim reap it; a group kill is the last resort.
        waiters = [asyncio.create_task(p.wait()) for p in processes]
        for signal_number, patience in (
            (signal.SIGTERM, min(grace_seconds, MAX_GRACE_SECONDS)),
            (signal.SIGKILL, 2.0),
        ):
            running = [p for p in processes if p.returncode is None]
            for process in running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(main_pid(process.pid), signal_number)
            if running:
                await asyncio.wait(waiters, timeout=patience)
        for process in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        if waiters:
            await asyncio.wait(waiters)
        for run in self.containers.values():
            if run.task is not None:
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run.task
            await asyncio.to_thread(cgroups.kill_and_remove, run.cgroup_dirs)
        if self.netns is not None:
            await asyncio.to_thread(self.kubelet.network.detach, self.netns)
