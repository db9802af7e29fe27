"""Running ``podtap dump`` against the simulated cluster as a user would: a real process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class DumpProcess:
    def __init__(self, *args: str, kubeconfig: str) -> None:
        self.command = [sys.executable, "-m", "tui", "dump", *args, "--kubeconfig", kubeconfig]
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._changed = threading.Condition()
        for stream, sink in (
            (self.process.stdout, self._stdout),
            (self.process.stderr, self._stderr),
        ):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream: object, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            with self._changed:
                sink.append(raw.decode("utf-8", "replace"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def stdout(self) -> str:
        with self._changed:
            return "".join(self._stdout)

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self._stderr)

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not check():
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not check()):
                    raise AssertionError(
                        f"gave up waiting for {what}; exit={self.process.poll()}\n"
                        f"--- stderr\n{''.join(self._stderr)}\n"
                        f"--- stdout\n{''.join(self._stdout)[-3000:]}"
                    )
                self._changed.wait(min(left, 0.5))

    def wait_for_stderr(self, pattern: str, timeout: float = 60, count: int = 1) -> None:
        regex = re.compile(pattern)
        self.wait_until(
            f"{count} x /{pattern}/ on stderr",
            lambda: len(regex.findall("".join(self._stderr))) >= count,
            timeout,
        )

    def wait_for_stdout(self, pattern: str, timeout: float = 20) -> None:
        regex = re.compile(pattern)
        self.wait_until(
            f"/{pattern}/ on stdout", lambda: bool(regex.search("".join(self._stdout))), timeout
        )

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def blocks_by_source(text: str) -> dict[str, list[str]]:
    """The ``Data:`` lines of a ``dump`` output, grouped by the ``[ns/pod]`` of their header."""
    seen: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        header = re.match(r"## \[([^\]]+)\] Connection ID \d+: \d+ bytes$", line)
        if header:
            current = header.group(1)
            continue
        if current and line.startswith("Data: "):
            seen.setdefault(current, []).append(line[len("Data: ") :])
            current = None
    return seen
