"""Benchmark: ``podtap dump deployment/web`` on the cluster simulator at 10 to 300 replicas.

For each size, on 20 simulated nodes (30 from 300 replicas on; real network namespaces and
processes on this machine): a loop on the host sends one request to every pod each second from
the moment ``dump`` starts; the figures are seconds from start to the first request seen, and
to a request seen from every pod; agent pods; port-forwards open; the client's peak RSS and CPU
seconds; seconds from Ctrl+C until ``dump`` has exited, and until no agent process, Job, pod,
Secret or ConfigMap is left.
Then two figures of the agent alone: the idle RSS of a node agent tapping 5 pods, and the time
to encode a batch of 1000 events with msgspec and with the pure-Python subset a stock Python
image uses (ratio in the same run). Needs root.

    .venv/bin/python bench/bench_kube_scale.py [--sizes 10,50,100,300] [--nodes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client, config  # noqa: E402

from tests.kube.dumping import DumpProcess  # noqa: E402
from tests.kubesim import KubeSim, PodInfo, SimConfig, Workload  # noqa: E402

SELECTOR = "app.kubernetes.io/name=podtap-agent"


def leftovers(api: client.ApiClient) -> int:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    return sum(
        len(listing(label_selector=SELECTOR).items)
        for listing in (
            batch.list_job_for_all_namespaces,
            core.list_pod_for_all_namespaces,
            core.list_secret_for_all_namespaces,
            core.list_config_map_for_all_namespaces,
        )
    )


def keep_asking(pods: list[PodInfo], stop: threading.Event) -> None:
    def ask(pod: PodInfo) -> None:
        try:
            url = f"http://{pod.ip}:8080/bench/{pod.name}"
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
        except OSError:
            pass

    with ThreadPoolExecutor(8) as pool:
        while not stop.is_set():
            started = time.monotonic()
            list(pool.map(ask, pods))
            stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_size(replicas: int, nodes: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-kube-"))
    kubeconfig = work / "kubeconfig"
    sim_config = SimConfig(nodes=nodes, deployments=[Workload("default", "web", replicas, 8080)])
    with KubeSim(sim_config, kubeconfig) as sim:
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        pods = sim.pods("default", "app=web")
        stop = threading.Event()
        asking = threading.Thread(target=keep_asking, args=(pods, stop), daemon=True)
        started = time.monotonic()
        dump = DumpProcess("deployment/web", "-p", "8080", kubeconfig=str(kubeconfig))
        asking.start()
        figures: dict[str, float] = {}
        try:
            dump.wait_for_stdout(r"## \[default/", 120)
            figures["first traffic s"] = time.monotonic() - started
            names = {f"## [default/{p.name}]" for p in pods}
            dump.wait_until("traffic from every pod",
                            lambda: all(n in dump.stdout for n in names), 300)  # fmt: skip
            figures["all pods s"] = time.monotonic() - started
            figures["agent pods"] = len(sim.agent_processes())
            figures["port-forwards"] = sim.call(lambda: len(sim.cluster.port_forwards))
            figures["client MB"] = peak_rss_mb(dump.process.pid)
            figures["client CPU s"] = cpu_seconds(dump.process.pid)
            stop.set()
            stopping = time.monotonic()
            dump.stop(signal.SIGINT, 60)
            figures["exit s"] = time.monotonic() - stopping
            deadline = stopping + 60
            while (sim.agent_processes() or leftovers(api)) and time.monotonic() < deadline:
                time.sleep(0.1)
            figures["cleanup s"] = time.monotonic() - stopping
        finally:
            stop.set()
            dump.kill()
            api.close()
    return figures


def node_agent_idle_rss() -> float:
    """A node agent tapping 5 namespaces after a few requests to each, then 3 s idle."""
    from websockets.asyncio.client import connect

    from agent.events import PodTapped
    from agent.requests import TapPod, encode_request
    from tests.integration.agent_process import receive, running_agent
    from tests.integration.test_node_agent import fake_pod

    async def measure() -> float:
        with ExitStack() as stack:
            pods = [stack.enter_context(fake_pod(f"idle-{i}")) for i in range(5)]
            agent = stack.enter_context(running_agent(["--node", "bench", "--port", "8080"]))
            async with connect(agent.url()) as ws:
                await receive(ws)
                for pod in pods:
                    request = TapPod(pod=pod.name, container_id=pod.container_id)
                    await ws.send(encode_request(request))
                tapped = 0
                while tapped < 5:
                    tapped += sum(isinstance(e, PodTapped) for e in await receive(ws))
                for pod in pods:
                    for n in range(20):
                        await asyncio.to_thread(pod.get, f"/warm/{n}")
                await asyncio.sleep(3)
                return peak_rss_mb(agent.process.pid)

    return asyncio.run(measure())


ENCODE = """
import time
from agent.events import DataReceived
from agent.wire import encode_batch
batch = [DataReceived(seq=i, ts=1.0, conn=i % 50, direction="in", data=b"x" * 300)
         for i in range(1000)]
times = []
for _ in range(30):
    start = time.perf_counter()
    encode_batch(batch)
    times.append(time.perf_counter() - start)
print(sorted(times)[15])
"""


def encode_ratio() -> tuple[float, float]:
    def median(*flags: str) -> float:
        out = subprocess.run([sys.executable, *flags, "-c", ENCODE], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
        return float(out)

    return median(), median("-S")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,50,100,300")
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--scale-only", action="store_true", help="skip the agent-alone figures")
    args = parser.parse_args()
    columns = ["first traffic s", "all pods s", "agent pods", "port-forwards", "client MB",
               "client CPU s", "exit s", "cleanup s"]  # fmt: skip
    print(f"{'replicas':>8} " + " ".join(f"{c:>15}" for c in columns))
    for size in (int(s) for s in args.sizes.split(",")):
        figures = run_size(size, args.nodes if size < 300 else max(args.nodes, 30))
        print(f"{size:>8} " + " ".join(f"{figures[c]:>15.1f}" for c in columns), flush=True)
    if args.scale_only:
        return
    print(f"node agent tapping 5 pods, idle: {node_agent_idle_rss():.1f} MB RSS")
    with_msgspec, without = encode_ratio()
    print(f"encoding 1000 events: msgspec {with_msgspec * 1e3:.2f} ms, pure Python "
          f"{without * 1e3:.2f} ms ({without / with_msgspec:.0f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
