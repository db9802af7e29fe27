"""Benchmark: what ``podtap dump`` sees of nginx under wrk load (issue 2).

nginx (one worker) serves a tiny response in a lab network namespace; wrk drives it from the
host while ``podtap dump netns/LAB -p 8080 --format jsonl`` captures. Scenarios:

- paced: a wrk script waits 1 ms before each request, at 32 and 64 connections;
- flood: wrk at full speed;
- tcpdump: the same flood captured by tcpdump instead, for its CPU cost.

For each: requests served (lines of nginx's access log), requests podtap saw complete (request
lines in the captured client->server bytes), packets/s, kernel drops and gaps (from the agent's
Stats), events lost, CPU seconds of the agent (with its capture workers, if any) and of the
dump client from the start of the load to the end of the drain (start-up excluded), and the
agent's CPU per request it saw (us/req; for tcpdump, its CPU per request it captured). With
``--command record``, ``podtap record ... -o FILE.jsonl`` captures instead of dump, and the
file is read the same way; with ``--format pcap`` (implies ``--command record``), ``podtap
record ... -o FILE.pcap``, whose file is read back by podtap's own pcap reader (a pcap has no
Stats: packets/s and kernel drops are not known, gaps are those the file shows). The
scenarios run interleaved, --runs times; each row is the run with the median share seen, its
CPU columns medians. Last, the flood's cost per captured request as a multiple of tcpdump's,
run by run (each flood beside its tcpdump flood), and their median. Needs root, nginx and wrk
(scripts/setup.sh installs them). The agent's CPU includes its capture workers' (``--workers``:
the agent's own option, passed as PODTAP_AGENT_WORKERS). CPU seconds, not wall time, and ratios
within one run: the machine may be shared.

    .venv/bin/python bench/bench_dump.py [--seconds 10] [--runs 3] [--only paced32,flood]
        [--format jsonl|text|pcap] [--command dump|record] [--workers auto|N] [--profile DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.events import AnyEvent, DataReceived, EventsLost, Gap, Stats  # noqa: E402
from tests.netlab import Lab, network_lab  # noqa: E402
from tui.output.jsonl import decode_header, decode_line  # noqa: E402
from tui.output.pcap_reading import read_pcap  # noqa: E402

PORT = 8080
# py-spy (pip install py-spy) for --profile: beside this Python, or on the PATH.
PY_SPY = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format short '$request';
    access_log {dir}/access.log short;
    server {{
        listen {address}:{port} reuseport backlog=4096;
        keepalive_requests 1000000;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""

PACED_LUA = "function delay()\n  return 1\nend\n"


@dataclass
class Result:
    served: int = 0
    seen: int = 0
    packets_per_s: float = 0.0
    kernel_drops: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    events_lost: int = 0
    agent_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def seen_pct(self) -> float:
        return 100.0 * self.seen / self.served if self.served else 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time of a process's running threads so far, in nanoseconds from the scheduler
    (schedstat), not in the 10 ms ticks of /proc/PID/stat: tcpdump spends a few ticks a run."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and of its running descendants (the agent's capture workers)."""
    total = 0.0
    for member in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):  # exited meanwhile
            total += cpu_seconds(member)
    return total


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def wait_for(predicate: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.05)


def run_wrk(lab: Lab, workdir: Path, connections: int, seconds: int, paced: bool) -> str:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s"]
    if paced:
        script = workdir / "paced.lua"
        script.write_text(PACED_LUA)
        argv += ["-s", str(script)]
    argv.append(f"http://{lab.ns_ip}:{PORT}/")
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def count_access_log(workdir: Path) -> int:
    with open(workdir / "access.log", "rb") as log:
        return sum(1 for _ in log)


def reset_access_log(workdir: Path, nginx: subprocess.Popen[bytes]) -> None:
    (workdir / "access.log").write_bytes(b"")
    # nginx keeps writing to its open file (truncated): fine, the count starts from zero.


# A whole request as wrk sends it: request line, headers, blank line.
REQUEST = re.compile(rb"GET / HTTP/1\.1\r\n(?:[^\r\n]+\r\n)*\r\n")


def with_podtap(
    lab: Lab,
    workdir: Path,
    connections: int,
    seconds: int,
    paced: bool,
    output_format: str,
    profile: Path | None = None,
    command: str = "dump",
) -> Result:
    output = workdir / f"{command}.{output_format}"
    errors = workdir / f"{command}.err"
    argv = [sys.executable, "-m", "tui", command, f"netns/{lab.name}", "-p", str(PORT)]
    if command == "record":  # the file is the output; stdout stays empty
        output.unlink(missing_ok=True)
        argv += ["-o", str(output)]
    else:
        argv += ["--format", output_format]
    stdout = output if command == "dump" else workdir / "record.stdout"
    with open(stdout, "wb") as out, open(errors, "wb") as err:
        dump = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=err)
        try:
            wait_for(lambda: b"Listening" in errors.read_bytes(), "podtap dump")
            (agent,) = children(dump.pid)
            # From here on: start-up (imports, namespace, ring) is not what a request costs.
            agent_start, client_start = tree_cpu_seconds(agent), cpu_seconds(dump.pid)
            spy = start_profile(agent, seconds, profile) if profile else None
            run_wrk(lab, workdir, connections, seconds, paced)
            if spy is not None:
                spy.wait(timeout=30)
            # Let the agent and client drain what they still hold before measuring.
            wait_for_drain(output)
            agent_cpu = tree_cpu_seconds(agent) - agent_start
            client_cpu = cpu_seconds(dump.pid) - client_start
        finally:
            dump.send_signal(signal.SIGTERM)
            dump.wait(timeout=30)
    result = Result(agent_cpu_s=agent_cpu, client_cpu_s=client_cpu)
    if output_format == "jsonl":
        read_jsonl(output, seconds, result)
    elif output_format == "pcap":
        read_events(read_pcap(str(output), [PORT]), seconds, result)
    else:
        read_text(output, errors, result)
    return result


def wait_for_drain(output: Path, settle: float = 1.0, longest: float = 30.0) -> None:
    """Wait until dump's output grows by less than a few Stats lines in ``settle`` seconds:
    on a busy machine the agent may still be reading its ring seconds after the load."""
    time.sleep(settle)
    deadline = time.monotonic() + longest
    size = output.stat().st_size
    while time.monotonic() < deadline:
        time.sleep(settle)
        grown, size = output.stat().st_size - size, output.stat().st_size
        if grown < 4096:
            return


def start_profile(agent: int, seconds: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the agent (and its capture workers) while the load runs: collapsed
    stacks, one line per stack with its sample count, for grep and sort."""
    return subprocess.Popen(
        [
            PY_SPY or "py-spy",
            "record",
            "--pid",
            str(agent),
            "--subprocesses",
            "--threads",
            "--nonblocking",
            "--gil",  # only the thread that holds the interpreter lock: where the CPU goes
            "--format",
            "raw",
            "--rate",
            "200",
            "--duration",
            str(seconds),
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def read_jsonl(output: Path, seconds: int, result: Result) -> None:
    with open(output, "rb") as lines:
        read_events(
            (decode_line(line)[1] for line in lines if decode_header(line) is None),
            seconds,
            result,
        )


def read_events(events: Iterable[AnyEvent], seconds: int, result: Result) -> None:
    last_stats: Stats | None = None
    requests: dict[int, bytearray] = defaultdict(bytearray)
    gaps = 0
    for event in events:
        if isinstance(event, DataReceived):
            if event.direction == "in":
                requests[event.conn] += event.data
        elif isinstance(event, Gap):
            gaps += 1
            if event.direction == "in":
                requests[event.conn] += b"\0"  # a request cut by a gap is not complete
        elif isinstance(event, Stats):
            last_stats = event
        elif isinstance(event, EventsLost):
            result.events_lost += event.count
    result.seen = sum(len(REQUEST.findall(stream)) for stream in requests.values())
    result.gaps = gaps  # what the file shows, unless the agent's Stats say
    if last_stats:
        # The counters are cumulative since the agent started, and all traffic is wrk's.
        result.packets_per_s = last_stats.packets / seconds
        result.kernel_drops = last_stats.kernel_drops
        result.gaps = last_stats.gaps
        result.gap_bytes = last_stats.gap_bytes


def read_text(output: Path, errors: Path, result: Result) -> None:
    """The text format has no Stats: drops come from dump's stderr, gaps from the dump."""
    text = output.read_bytes()
    result.seen = text.count(b"Data: GET / HTTP/1.1\r\n")
    result.gaps = text.count(b" bytes missing")
    result.events_lost = sum(
        int(n) for n in re.findall(rb"^## (\d+) events lost", text, re.MULTILINE)
    )
    drops = re.findall(rb"\((\d+) in all\)", errors.read_bytes())
    result.kernel_drops = int(drops[-1]) if drops else 0


def with_tcpdump(lab: Lab, workdir: Path, connections: int, seconds: int) -> tuple[Result, float]:
    """tcpdump's CPU, drops and packet rate on the same flood, and the share of packets it
    captured (its own count, on stderr): the caller scales the requests served by it."""
    tcpdump = subprocess.Popen(
        lab.command(
            ["tcpdump", "-i", "any", "-n", "-B", "16384", "-w", "/dev/null", f"tcp port {PORT}"]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.5)
        start = cpu_seconds(tcpdump.pid)
        run_wrk(lab, workdir, connections, seconds, paced=False)
        time.sleep(0.5)
        cpu = cpu_seconds(tcpdump.pid) - start
    finally:
        tcpdump.send_signal(signal.SIGINT)
        _, err = tcpdump.communicate(timeout=10)
    said = err.decode()
    captured = re.search(r"(\d+) packets? captured", said)
    dropped = re.search(r"(\d+) packets? dropped by kernel", said)
    result, share = Result(agent_cpu_s=cpu), 1.0
    if captured and dropped and int(captured[1]):
        kept, lost = int(captured[1]), int(dropped[1])
        share = kept / (kept + lost)
        result.kernel_drops = lost
        result.packets_per_s = kept / seconds
    return result, share


SCENARIOS = {
    "paced32": (32, True),
    "paced64": (64, True),
    "flood": (64, False),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="paced32,paced64,flood,tcpdump")
    parser.add_argument(
        "--format",
        choices=("jsonl", "text", "pcap"),
        default="jsonl",
        help="the output format (text has no packet rate: it carries no Stats; pcap is "
        "podtap record -o FILE.pcap)",
    )
    parser.add_argument(
        "--command",
        choices=("dump", "record"),
        default="dump",
        help="record: podtap record -o FILE.jsonl (or .pcap) instead of dump",
    )
    parser.add_argument("--workers", default="auto", help="the agent's --workers")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the agent with py-spy during each run, into DIR/SCENARIO-RUN.txt",
    )
    args = parser.parse_args()
    if args.format == "pcap":
        args.command = "record"
    elif args.command == "record":
        args.format = "jsonl"
    os.environ["PODTAP_AGENT_WORKERS"] = args.workers
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces and packet capture)")
    wanted = [name for name in (*SCENARIOS, "tcpdump") if name in args.only.split(",")]
    runs: dict[str, list[Result]] = {name: [] for name in wanted}
    with network_lab("pb") as lab, tempfile.TemporaryDirectory(prefix="podtap-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "nginx.conf").write_text(
            NGINX_CONF.format(dir=workdir, address=lab.ns_ip, port=PORT)
        )
        nginx = lab.popen(["nginx", "-c", str(workdir / "nginx.conf"), "-p", str(workdir)])
        try:
            wait_for(lambda: (workdir / "nginx.pid").exists(), "nginx")
            # Interleaved (every scenario once, then again): a machine whose load drifts
            # weighs on every scenario alike, and each flood has its tcpdump flood beside it.
            for run in range(args.runs):
                for name in wanted:
                    reset_access_log(workdir, nginx)
                    share = 1.0
                    if name == "tcpdump":
                        result, share = with_tcpdump(lab, workdir, 64, args.seconds)
                    else:
                        connections, paced = SCENARIOS[name]
                        profile = args.profile / f"{name}-{run}.txt" if args.profile else None
                        result = with_podtap(
                            lab,
                            workdir,
                            connections,
                            args.seconds,
                            paced,
                            args.format,
                            profile,
                            args.command,
                        )
                    result.served = count_access_log(workdir)
                    if name == "tcpdump":  # it counts packets: its share of them, of requests
                        result.seen = round(result.served * share)
                    runs[name].append(result)
                    print(f"  {name}: {summary(result)}", file=sys.stderr, flush=True)
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=10)
    writes = f"-o FILE.{args.format}" if args.command == "record" else f"--format {args.format}"
    print(
        f"podtap {args.command} {writes} under wrk, agent --workers {args.workers}, "
        f"{args.seconds} s per run, {args.runs} interleaved runs: the run with the median "
        "share seen (CPU columns: medians)"
    )
    print(
        f"{'scenario':<9} {'served':>8} {'seen':>8} {'seen%':>7} {'pkt/s':>8} "
        f"{'kdrops':>7} {'gaps':>6} {'lost':>7} {'agentCPU':>9} {'us/req':>7} {'dumpCPU':>8}"
    )
    for name, results in runs.items():
        r = median_result(results)
        print(
            f"{name:<9} {r.served:>8} {r.seen:>8} {r.seen_pct:>6.1f}% {r.packets_per_s:>8.0f} "
            f"{r.kernel_drops:>7} {r.gaps:>6} {r.events_lost:>7} {r.agent_cpu_s:>8.2f}s "
            f"{median_cost(results):>7.2f} {r.client_cpu_s:>7.2f}s"
        )
    if "flood" in runs and "tcpdump" in runs:
        ratios = [
            cost_per_request(podtap) / cost_per_request(tcpdump)
            for podtap, tcpdump in zip(runs["flood"], runs["tcpdump"], strict=True)
            if cost_per_request(tcpdump) > 0
        ]
        if ratios:
            print(
                f"flood: podtap's agent spends {statistics.median(ratios):.1f}x tcpdump's CPU "
                f"per captured request (median of {len(ratios)} runs side by side: "
                f"{', '.join(f'{ratio:.1f}x' for ratio in ratios)})"
            )
    return 0


def cost_per_request(r: Result) -> float:
    """Microseconds of capture CPU (the agent's, or tcpdump's) per request it captured."""
    return r.agent_cpu_s / r.seen * 1e6 if r.seen else float("inf")


def median_cost(results: list[Result]) -> float:
    return statistics.median(cost_per_request(r) for r in results)


def summary(r: Result) -> str:
    return (
        f"{r.served} served, {r.seen} seen ({r.seen_pct:.1f}%), {r.packets_per_s:.0f} pkt/s, "
        f"{r.kernel_drops} kernel drops, {r.gaps} gaps, {r.events_lost} events lost, "
        f"agent {r.agent_cpu_s:.2f} s, dump {r.client_cpu_s:.2f} s"
    )


def median_result(runs: list[Result]) -> Result:
    """The run with the median share of requests seen, whole, so that the figures of a row
    (served, seen, drops, gaps) belong together; the CPU columns are medians of their own."""
    ordered = sorted(runs, key=lambda r: r.seen_pct)
    middle = ordered[(len(ordered) - 1) // 2]
    return replace(
        middle,
        agent_cpu_s=statistics.median(r.agent_cpu_s for r in runs),
        client_cpu_s=statistics.median(r.client_cpu_s for r in runs),
    )


if __name__ == "__main__":
    sys.exit(main())
