"""Record examples/demo.jsonl: live demo traffic captured by the real agent (needs root).

    .venv/bin/python scripts/record_demo_example.py [--seconds 20] [--max-bytes 180000]

Starts the demo environment, runs ``podtap dump netns/... --format jsonl`` on it, and writes a
header line ``{"podtap": VERSION, "target": ..., "ports": [...]}`` followed by the captured
events, one JSON object per line, stopping at whichever limit comes first.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent import __version__  # noqa: E402
from agent.wire import decode_json  # noqa: E402
from tui.demo import DemoEnvironment  # noqa: E402
from tui.output.jsonl import decode_header  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-bytes", type=int, default=180_000)
    parser.add_argument("--output", type=Path, default=REPO / "examples" / "demo.jsonl")
    args = parser.parse_args()

    lines: list[bytes] = []
    size = 0
    # Traffic starts once capture is live, so that every connection is seen from its SYN.
    with DemoEnvironment(traffic=False) as demo:
        ports = demo.ports
        target = str(demo.target)
        argv = [sys.executable, "-m", "tui", "dump", target, "--format", "jsonl"]
        for port in ports:
            argv += ["-p", str(port)]
        dump = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert dump.stdout is not None
        assert dump.stderr is not None
        for status in dump.stderr:
            if b"Listening for traffic" in status:
                break
        else:
            raise SystemExit("podtap dump ended before capture was live")
        demo.start_traffic()
        header = json.dumps({"podtap": __version__, "target": target, "ports": ports})
        size = len(header) + 1
        deadline = time.monotonic() + args.seconds
        try:
            while time.monotonic() < deadline:
                line = dump.stdout.readline()
                if not line:
                    break
                if decode_header(line) is not None:
                    continue  # dump's own header: this script writes its own
                if size + len(line) > args.max_bytes:
                    break
                decode_json(line)  # every line must read back as an event
                lines.append(line)
                size += len(line)
        finally:
            dump.send_signal(signal.SIGTERM)
            dump.wait(10)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(header.encode() + b"\n" + b"".join(lines))
    print(f"wrote {args.output} ({size:,} bytes, {len(lines)} events)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
