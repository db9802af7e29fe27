"""How fast podtap's capture reads segments, compared with a plain receive loop and tcpdump.

Traffic: wrk against nginx in a lab namespace (the client on the host, over the veth). Every
request and response is a segment with payload, so it passes the in-kernel filter; bare ACKs
do not. Three figures, each the median of --runs runs:

1. parse: agent.packet.parse_ip on prebuilt frames (pure Python ceiling), per CPU second.
2. drain: the kernel queue is filled by ~1 s of flood while nobody reads, then drained as fast
   as possible: the TPACKET_V3 ring (agent.capture.Capture) vs recv_into on a socket with the
   same filter and a large SO_RCVBUF. This is the user-space rate, with no waiting for traffic,
   counted per CPU second of the reading thread (on a shared machine, wall-clock rates mostly
   measure the scheduler).
3. live: a flood captured at once by Capture (in a thread) and by `tcpdump -w /dev/null` with
   an equivalent filter: frames seen, kernel drops, CPU seconds of each.

Run as root: python -m bench.bench_capture [--runs 3] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import bpf
from agent.capture import Capture, attach_filter, bind_all_interfaces
from agent.netns import NamespaceRef, named_namespace, run_in_namespace
from agent.packet import parse_ip
from tests.netlab import Lab, network_lab

PORT = 8080
TCPDUMP_FILTER = (
    f"tcp port {PORT} and (tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0 "
    "or (ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2) != 0)"
)
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir};
    proxy_temp_path {dir};
    fastcgi_temp_path {dir};
    uwsgi_temp_path {dir};
    scgi_temp_path {dir};
    server {{
        listen {port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


@contextmanager
def nginx(lab: Lab) -> Iterator[None]:
    with tempfile.TemporaryDirectory() as directory:
        conf = Path(directory, "nginx.conf")
        conf.write_text(NGINX_CONF.format(dir=directory, port=PORT))
        server = lab.popen(["nginx", "-c", str(conf)])
        try:
            deadline = time.monotonic() + 5
            while True:
                try:
                    socket.create_connection((lab.ns_ip, PORT), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield
        finally:
            server.terminate()
            server.wait()


def wrk(lab: Lab, seconds: float, connections: int = 64) -> float:
    """Run wrk for ``seconds``; return its requests/s."""
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", f"http://{lab.ns_ip}:{PORT}/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in output.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(output)


def parse_rate(count: int = 300_000) -> float:
    from scapy.layers.inet import IP, TCP
    from scapy.packet import Raw

    frame = bytes(
        IP(src="198.18.0.1", dst="198.18.0.2")
        / TCP(sport=40000, dport=PORT, flags="PA")
        / Raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    )
    ring = memoryview(frame * 100)
    step = len(frame)
    started = time.thread_time()
    for _ in range(count // 100):
        for offset in range(0, 100 * step, step):
            parse_ip(ring, offset, offset + step)
    return count / (time.thread_time() - started)


def drain_ring(lab: Lab, namespace: NamespaceRef) -> tuple[float, int, int]:
    with Capture(namespace, [PORT], block_count=128) as capture:
        wrk(lab, 1)
        time.sleep(0.1)  # let the ring retire its last, partly filled block
        frames = 0
        started = time.thread_time()
        while batch := capture.read_frames(0, max_blocks=16):
            frames += len(batch)
        elapsed = time.thread_time() - started
        _, drops = capture.kernel_counters()
    return frames / elapsed, frames, drops


def drain_recv(lab: Lab, namespace: NamespaceRef) -> tuple[float, int, int]:
    def open_plain() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        attach_filter(sock, bpf.tcp_filter([PORT], [1]))
        sock.setsockopt(socket.SOL_SOCKET, 33, 512 << 20)  # SO_RCVBUFFORCE
        bind_all_interfaces(sock)
        return sock

    sock = run_in_namespace(namespace, open_plain)
    try:
        wrk(lab, 1)
        buffer = bytearray(262144)
        view = memoryview(buffer)
        captured = []
        started = time.thread_time()
        # What a recv-based Capture would do per frame: the interface (Python looks its name
        # up with an ioctl), a timestamp, the parse, the (ts, interface, segment) tuple.
        receive = sock.recvfrom_into
        try:
            while True:
                size, address = receive(buffer, 0, socket.MSG_DONTWAIT | socket.MSG_TRUNC)
                segment = parse_ip(view, 0, min(size, len(buffer)))
                if segment is not None:
                    captured.append((time.time(), address[0], segment))
        except BlockingIOError:
            pass
        frames = len(captured)
        elapsed = time.thread_time() - started
        packets_drops = sock.getsockopt(263, 6, 8)  # PACKET_STATISTICS (tpacket_stats)
        drops = int.from_bytes(packets_drops[4:8], sys.byteorder)
    finally:
        sock.close()
    return frames / elapsed, frames, drops


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live(lab: Lab, namespace: NamespaceRef, seconds: float) -> dict[str, float]:
    tcpdump = lab.popen(
        ["tcpdump", "-i", "any", "-n", "-B", "32768", "-w", "/dev/null", TCPDUMP_FILTER],
        stderr=subprocess.PIPE,
    )
    stop = threading.Event()
    result: dict[str, float] = {}

    def read() -> None:
        with Capture(namespace, [PORT]) as capture:
            ready.set()
            frames = 0
            cpu = resource.getrusage(resource.RUSAGE_THREAD)
            while not stop.is_set():
                frames += len(capture.read_frames(0.05))
            while batch := capture.read_frames(0.05):
                frames += len(batch)
            after = resource.getrusage(resource.RUSAGE_THREAD)
            result["podtap_frames"] = frames
            result["podtap_drops"] = capture.kernel_counters()[1]
            result["podtap_cpu"] = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime

    ready = threading.Event()
    reader = threading.Thread(target=read)
    reader.start()
    ready.wait()
    time.sleep(1)  # tcpdump opens its socket meanwhile
    result["requests_per_s"] = wrk(lab, seconds)
    time.sleep(0.3)
    stop.set()
    reader.join()
    result["tcpdump_cpu"] = cpu_seconds(tcpdump.pid)
    tcpdump.send_signal(signal.SIGINT)
    _, stderr = tcpdump.communicate(timeout=10)
    for line in stderr.decode().splitlines():
        words = line.split()
        if line.endswith("packets captured"):
            result["tcpdump_frames"] = int(words[0])
        elif line.endswith("dropped by kernel"):
            result["tcpdump_drops"] = int(words[0])
    return result


def median(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    print(f"parse:  {median(args.runs, parse_rate):,.0f} frames/CPU-s (agent.packet.parse_ip)")
    with network_lab("bc") as lab, nginx(lab):
        namespace = named_namespace(lab.name)
        rings = [drain_ring(lab, namespace) for _ in range(args.runs)]
        plains = [drain_recv(lab, namespace) for _ in range(args.runs)]
        ring_rate = statistics.median(r[0] for r in rings)
        plain_rate = statistics.median(r[0] for r in plains)
        print(
            f"drain:  TPACKET_V3 ring {ring_rate:,.0f} frames/CPU-s "
            f"(frames {[r[1] for r in rings]}, drops {[r[2] for r in rings]})"
        )
        print(
            f"        recvfrom_into   {plain_rate:,.0f} frames/CPU-s "
            f"(frames {[r[1] for r in plains]}, drops {[r[2] for r in plains]})"
        )
        print(f"        ring / recvfrom_into = {ring_rate / plain_rate:.2f}")
        lives = [live(lab, namespace, args.seconds) for _ in range(args.runs)]

    def m(key: str) -> float:
        return statistics.median(run.get(key, float("nan")) for run in lives)

    print(f"live:   wrk -c64 for {args.seconds:g} s: {m('requests_per_s'):,.0f} requests/s")
    for who in ("podtap", "tcpdump"):
        frames, cpu = m(f"{who}_frames"), m(f"{who}_cpu")
        print(
            f"        {who:8} {frames / args.seconds:,.0f} frames/s seen, "
            f"drops {m(f'{who}_drops'):,.0f}, CPU {cpu:.2f} s "
            f"({cpu / max(frames, 1) * 1e6:.2f} us/frame)"
        )
    print(
        f"        podtap / tcpdump: frames {m('podtap_frames') / m('tcpdump_frames'):.3f}, "
        f"CPU {m('podtap_cpu') / m('tcpdump_cpu'):.2f}"
    )


if __name__ == "__main__":
    main()
