"""``python -m tests.kubesim --kubeconfig PATH [options]``: run a simulated cluster until
SIGINT/SIGTERM, then remove everything it made."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from tests.kubesim.config import config_from_args, parser
from tests.kubesim.sim import KubeSim


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    with KubeSim(config_from_args(args), Path(args.kubeconfig)) as sim:
        for pod in sorted(sim.pods(), key=lambda p: (p.namespace, p.name)):
            print(f"pod {pod.namespace}/{pod.name} {pod.ip} {pod.node}")
        print("READY", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
