"""Benchmark: what ``podtap dump`` sees of nginx under wrk load (issue 2).

nginx (one worker) serves a tiny response in a lab network namespace; wrk drives it from the
host while ``podtap dump netns/LAB -p 8080 --format jsonl`` captures. Scenarios:

- paced: a wrk script waits 1 ms before each request, at 32 and 64 connections;
- flood: wrk at full speed;
- tcpdump: the same flood captured by tcpdump instead, for its CPU cost.

For each: requests served (lines of nginx's access log), requests podtap saw complete (request
lines in the captured client->server bytes), packets/s, kernel drops and gaps (from the agent's
Stats), events lost, and CPU seconds of the agent (with its capture workers, if any) and of the
dump client. Medians of --runs
runs. Needs root, nginx and wrk (scripts/setup.sh installs them). The agent's CPU includes its
capture workers' (``--workers``: the agent's own option, passed as PODTAP_AGENT_WORKERS).

    .venv/bin/python bench/bench_dump.py [--seconds 10] [--runs 3] [--only paced32,flood]
        [--format jsonl|text] [--workers auto|N]
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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.events import DataReceived, EventsLost, Gap, Stats  # noqa: E402
from tests.netlab import Lab, network_lab  # noqa: E402
from tui.output.jsonl import decode_header, decode_line  # noqa: E402

PORT = 8080
TICKS = os.sysconf("SC_CLK_TCK")
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
    """User + system CPU of a process (all its threads) so far."""
    fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / TICKS


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
) -> Result:
    output = workdir / f"dump.{output_format}"
    errors = workdir / "dump.err"
    with open(output, "wb") as out, open(errors, "wb") as err:
        dump = subprocess.Popen(
            [sys.executable, "-m", "tui", "dump", f"netns/{lab.name}", "-p", str(PORT),
             "--format", output_format],
            cwd=REPO, stdout=out, stderr=err,
        )
        try:
            wait_for(lambda: b"Listening" in errors.read_bytes(), "podtap dump")
            (agent,) = children(dump.pid)
            spy = start_profile(agent, seconds, profile) if profile else None
            run_wrk(lab, workdir, connections, seconds, paced)
            if spy is not None:
                spy.wait(timeout=30)
            # Let the agent and client drain what they still hold before measuring.
            time.sleep(3)
            agent_cpu, client_cpu = tree_cpu_seconds(agent), cpu_seconds(dump.pid)
        finally:
            dump.send_signal(signal.SIGTERM)
            dump.wait(timeout=30)
    result = Result(agent_cpu_s=agent_cpu, client_cpu_s=client_cpu)
    if output_format == "jsonl":
        read_jsonl(output, seconds, result)
    else:
        read_text(output, errors, result)
    return result


def start_profile(agent: int, seconds: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the agent (and its capture workers) while the load runs: collapsed
    stacks, one line per stack with its sample count, for grep and sort."""
    return subprocess.Popen(
        [PY_SPY or "py-spy", "record", "--pid", str(agent), "--subprocesses", "--threads",
         "--nonblocking", "--format", "raw", "--rate", "200", "--duration", str(seconds),
         "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def read_jsonl(output: Path, seconds: int, result: Result) -> None:
    last_stats: Stats | None = None
    requests: dict[int, bytearray] = defaultdict(bytearray)
    with open(output, "rb") as lines:
        for line in lines:
            if decode_header(line) is not None:
                continue
            _, event = decode_line(line)
            if isinstance(event, DataReceived):
                if event.direction == "in":
                    requests[event.conn] += event.data
            elif isinstance(event, Gap):
                if event.direction == "in":
                    requests[event.conn] += b"\0"  # a request cut by a gap is not complete
            elif isinstance(event, Stats):
                last_stats = event
            elif isinstance(event, EventsLost):
                result.events_lost += event.count
    result.seen = sum(len(REQUEST.findall(stream)) for stream in requests.values())
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


def with_tcpdump(lab: Lab, workdir: Path, connections: int, seconds: int) -> tuple[float, str]:
    tcpdump = subprocess.Popen(
        lab.command(["tcpdump", "-i", "any", "-n", "-B", "16384", "-w", "/dev/null",
                     f"tcp port {PORT}"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.5)
        run_wrk(lab, workdir, connections, seconds, paced=False)
        time.sleep(0.5)
        cpu = cpu_seconds(tcpdump.pid)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        _, err = tcpdump.communicate(timeout=10)
    said = [line for line in err.decode().splitlines() if "packets" in line]
    return cpu, ", ".join(said) or "?"


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
        "--format", choices=("jsonl", "text"), default="jsonl",
        help="dump's output format (text has no packet rate: it carries no Stats)",
    )
    parser.add_argument("--workers", default="auto", help="the agent's --workers")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR",
        help="sample the agent with py-spy during each run, into DIR/SCENARIO-RUN.txt",
    )
    args = parser.parse_args()
    os.environ["PODTAP_AGENT_WORKERS"] = args.workers
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces and packet capture)")
    wanted = args.only.split(",")
    rows: list[tuple[str, Result]] = []
    with network_lab("pb") as lab, tempfile.TemporaryDirectory(prefix="podtap-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "nginx.conf").write_text(
            NGINX_CONF.format(dir=workdir, address=lab.ns_ip, port=PORT)
        )
        nginx = lab.popen(["nginx", "-c", str(workdir / "nginx.conf"), "-p", str(workdir)])
        try:
            wait_for(lambda: (workdir / "nginx.pid").exists(), "nginx")
            for name, (connections, paced) in SCENARIOS.items():
                if name not in wanted:
                    continue
                runs = []
                for run in range(args.runs):
                    reset_access_log(workdir, nginx)
                    profile = args.profile / f"{name}-{run}.txt" if args.profile else None
                    result = with_podtap(
                        lab, workdir, connections, args.seconds, paced, args.format, profile
                    )
                    result.served = count_access_log(workdir)
                    runs.append(result)
                    print(f"  {name}: {summary(result)}", file=sys.stderr, flush=True)
                rows.append((name, median_result(runs)))
            if "tcpdump" in wanted:
                cpus = []
                for _ in range(args.runs):
                    reset_access_log(workdir, nginx)
                    cpu, dropped = with_tcpdump(lab, workdir, 64, args.seconds)
                    served = count_access_log(workdir)
                    cpus.append(cpu)
                    print(f"  tcpdump flood: {served} served, cpu {cpu:.2f} s, {dropped}",
                          file=sys.stderr, flush=True)
                rows.append(("tcpdump", Result(agent_cpu_s=statistics.median(cpus))))
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=10)
    print(f"podtap dump --format {args.format} under wrk, agent --workers {args.workers}, "
          f"{args.seconds} s per run, the run with the median share seen of {args.runs} "
          "(CPU: medians)")
    print(f"{'scenario':<9} {'served':>8} {'seen':>8} {'seen%':>7} {'pkt/s':>8} "
          f"{'kdrops':>7} {'gaps':>6} {'lost':>7} {'agentCPU':>9} {'dumpCPU':>8}")
    for name, r in rows:
        if name == "tcpdump":
            print(f"{'tcpdump':<9} {'(flood)':>8} {'':>8} {'':>7} {'':>8} {'':>7} {'':>6} "
                  f"{'':>7} {r.agent_cpu_s:>8.2f}s {'':>8}")
            continue
        print(f"{name:<9} {r.served:>8} {r.seen:>8} {r.seen_pct:>6.1f}% {r.packets_per_s:>8.0f} "
              f"{r.kernel_drops:>7} {r.gaps:>6} {r.events_lost:>7} {r.agent_cpu_s:>8.2f}s "
              f"{r.client_cpu_s:>7.2f}s")
    return 0


def summary(r: Result) -> str:
    return (f"{r.served} served, {r.seen} seen ({r.seen_pct:.1f}%), {r.packets_per_s:.0f} pkt/s, "
            f"{r.kernel_drops} kernel drops, {r.gaps} gaps, {r.events_lost} events lost, "
            f"agent {r.agent_cpu_s:.2f} s, dump {r.client_cpu_s:.2f} s")


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
