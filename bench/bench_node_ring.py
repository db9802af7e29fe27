"""Does a node agent's small capture ring keep up? The same traffic read through several.

A node agent gives each tapped pod a small ring (agent.budget) so that its idle RSS stays
small; a single-target agent has 64 MiB. Here several sizes (--rings) read one lab namespace
at once, each in a process of its own that lives through all the loads, as an agent does,
running the agent's capture path (ring -> reassembly -> journal, agent.sniffer.Sniffer,
256 KiB blocks as a node agent uses), while wrk loads nginx in the namespace: paced at a few
rates (wrk's per-connection delay), unpaced (as fast as this machine goes) and a burst of 256
connections. For each ring and load: the frames
that passed the filter, the kernel's drops, and the share seen. All rings see the same frames in
the same run, so their figures compare even on a busy machine. ``2>32`` is a ring that starts
at 2 MiB and grows to 32 MiB under pressure, as a node agent's does (agent.growing_ring).
With --idle-rss, also the idle RSS of a node agent tapping 5 pods (the budget the small ring
is for).

Run as root: .venv/bin/python bench/bench_node_ring.py [--seconds 5] [--rings 2,2>32,8,64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.budget import MIB, NODE_BLOCK_SIZE, NODE_GROWN_RING_MAX, NODE_RING_MAX  # noqa: E402
from bench.bench_capture import PORT, nginx  # noqa: E402
from tests.netlab import Lab, network_lab  # noqa: E402

DEFAULT_RINGS = f"{NODE_RING_MAX // MIB},{NODE_RING_MAX // MIB}>{NODE_GROWN_RING_MAX // MIB},64"
# Each connection waits this long before each request: connections x 1000 / delay = the rate.
PACED_SCRIPT = "function delay() return {delay} end\n"


@dataclass(frozen=True)
class Load:
    name: str
    connections: int
    delay_ms: int | None  # None: as fast as it goes
    seconds: float


def read_through_ring(netns: str, ring: str) -> None:
    """The reading process: the agent's capture path until stdin closes; prints its figures.
    ``ring``: MiB, or SMALL>BIG (MiB) for a ring that grows under pressure as a node agent's."""
    from functools import partial

    from agent.capture import Capture
    from agent.growing_ring import GrowingCapture
    from agent.journal import Journal
    from agent.netns import named_namespace
    from agent.sniffer import Sniffer
    from agent.tcp import Reassembler

    open_ring = partial(Capture, named_namespace(netns), [PORT], block_size=NODE_BLOCK_SIZE)
    small, _, big = ring.partition(">")
    blocks = [int(mib) * MIB // NODE_BLOCK_SIZE for mib in (small, big or small)]
    capture = GrowingCapture(open_ring, *blocks)
    try:
        sniffer = Sniffer(capture, Reassembler(frozenset([PORT])), Journal())
        sniffer.start()
        print("ready", flush=True)
        # Each line asks for the counters so far; the reader lives through every load, as an
        # agent would (a ring that grew stays grown).
        for _ in sys.stdin:
            time.sleep(0.3)  # the last, partly filled block is handed over after its timeout
            packets, drops = capture.kernel_counters()
            figures = {"packets": packets, "drops": drops, "grown": capture.on_big_ring}
            print(json.dumps(figures), flush=True)
        sniffer.stop()
    finally:
        capture.close()


def wrk(lab: Lab, load: Load, script: Path) -> float:
    command = ["wrk", "-t1", f"-c{load.connections}", f"-d{load.seconds:g}s"]
    if load.delay_ms is not None:
        script.write_text(PACED_SCRIPT.format(delay=load.delay_ms))
        command += ["-s", str(script)]
    command.append(f"http://{lab.ns_ip}:{PORT}/")
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    for line in output.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(output)


class Readers:
    """One reading process per ring, all on the lab's namespace."""

    def __init__(self, lab: Lab, rings: dict[str, str]) -> None:
        self._readers = {
            name: subprocess.Popen(
                [sys.executable, __file__, "--reader", lab.name, spec],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for name, spec in rings.items()
        }
        for reader in self._readers.values():
            assert reader.stdout is not None
            if reader.stdout.readline().strip() != "ready":
                raise RuntimeError("a reader did not start")
        self._last = {name: {"packets": 0.0, "drops": 0.0} for name in rings}

    def since_last(self) -> dict[str, dict[str, float]]:
        """Per ring: packets and drops since the last call, and whether it has grown."""
        figures = {}
        for name, reader in self._readers.items():
            assert reader.stdin is not None
            assert reader.stdout is not None
            reader.stdin.write("\n")
            reader.stdin.flush()
            now = json.loads(reader.stdout.readline())
            last = self._last[name]
            figures[name] = {
                "packets": now["packets"] - last["packets"],
                "drops": now["drops"] - last["drops"],
                "grown": now["grown"],
            }
            self._last[name] = now
        return figures

    def close(self) -> None:
        for reader in self._readers.values():
            reader.kill()
            reader.wait()


def node_agent_idle_rss() -> float:
    sys.path.insert(0, str(REPO / "bench"))
    from bench_kube_scale import node_agent_idle_rss as idle_rss

    return idle_rss()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument(
        "--rings", default=DEFAULT_RINGS, help="ring sizes in MiB, read at once (%(default)s)"
    )
    parser.add_argument("--reader", nargs=2, metavar=("NETNS", "RING"), help="internal")
    parser.add_argument("--idle-rss", action="store_true", help="also a node agent's idle RSS")
    args = parser.parse_args()
    if args.reader:
        read_through_ring(args.reader[0], args.reader[1])
        return
    seconds = args.seconds
    rings = {f"{spec} MiB": spec for spec in args.rings.split(",")}
    loads = [
        Load("paced 5k/s", 10, 2, seconds),
        Load("paced 10k/s", 20, 2, seconds),
        Load("paced 20k/s", 40, 2, seconds),
        Load("paced 38k/s", 100, 2, seconds),
        Load("unpaced -c64", 64, None, seconds),
        Load("burst -c256 2 s", 256, None, 2),
    ]
    print(f"{'load':>16} {'req/s':>8}" + "".join(
        f" {name + ' ' + what:>18}" for name in rings for what in ("frames", "drops", "seen %")
    ))  # fmt: skip
    with network_lab("br") as lab, nginx(lab):
        script = Path(f"/tmp/{lab.name}-paced.lua")
        readers = Readers(lab, rings)
        try:
            for load in loads:
                rate = wrk(lab, load, script)
                figures = readers.since_last()
                row = f"{load.name:>16} {rate:>8,.0f}"
                for name in rings:
                    f = figures[name]
                    seen = 100 * (f["packets"] - f["drops"]) / max(f["packets"], 1)
                    grown = "*" if f["grown"] else " "
                    row += f" {f['packets']:>18,.0f} {f['drops']:>18,.0f} {seen:>17.2f}{grown}"
                print(row, flush=True)
            print("(*: the ring had grown by the end of the load)")
        finally:
            readers.close()
            script.unlink(missing_ok=True)
    if args.idle_rss:
        print(f"node agent tapping 5 pods, idle: {node_agent_idle_rss():.1f} MB RSS")


if __name__ == "__main__":
    main()
