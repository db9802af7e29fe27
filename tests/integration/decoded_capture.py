"""Capture real peers in a lab namespace with ``podtap dump --format jsonl`` and decode what it
recorded the way the app does: the exchanges (a :class:`Store`), ``dump --http``'s text and the
HAR entries, for tests to compare with what the peers themselves sent."""

from __future__ import annotations

import asyncio
import io
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.integration.test_dump import running_dump
from tests.netlab import Lab
from tui.model.flows import Connection, Exchange
from tui.model.store import Store
from tui.model.updates import AgentEvent
from tui.output.exchange_text import ExchangeTextFormatter, ExchangeWriter
from tui.output.har import har_entry
from tui.output.jsonl import decode_line


@dataclass
class Decoded:
    store: Store
    text: str
    """What ``podtap dump --http --reveal`` prints for the same events."""
    connections: list[Connection] = field(default_factory=list)

    @property
    def exchanges(self) -> list[Exchange]:
        return [exchange for conn in self.connections for exchange in conn.exchanges]

    def har(self) -> list[dict[str, Any]]:
        return [
            har_entry(exchange, conn, reveal=True)
            for conn in self.connections
            for exchange in conn.exchanges
        ]


def decode_recording(lines: Sequence[bytes]) -> Decoded:
    updates = [AgentEvent(*decode_line(line)) for line in lines if line and b'"type"' in line]
    stream = io.BytesIO()
    store = Store()
    ExchangeWriter(stream, ExchangeTextFormatter(reveal=True), store).write(updates)
    connections = sorted(store.connections.values(), key=lambda conn: conn.opened)
    return Decoded(store, stream.getvalue().decode(), connections)


async def capture(
    lab: Lab, port: int, traffic: Callable[[], Awaitable[None]], closes: int = 1
) -> Decoded:
    """Run ``traffic`` while podtap captures ``port`` in ``lab``; wait for ``closes``
    connections to end, then decode what was captured."""
    async with running_dump(f"netns/{lab.name}", "-p", str(port), "--format", "jsonl") as dump:
        await dump.wait_for_stderr("Listening for traffic")
        await traffic()
        await dump.wait_for_stdout(lambda out: out.count(b'"type":"close"') >= closes, 20)
        status, stdout = await dump.stop()
    assert status == 0, dump.stderr_lines
    return decode_recording(stdout.splitlines())


def start_in_lab(
    lab: Lab, code: str, address: str, port: int, *args: str
) -> subprocess.Popen[bytes]:
    """A Python server (``code``, given ``address``, ``port`` and ``args`` as arguments) in the
    lab, once it listens."""
    server = lab.popen([sys.executable, "-c", code, address, str(port), *args])
    wait_listening(address, port, server)
    return server


def wait_listening(address: str, port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            assert process.poll() is None, "the lab server died"
            assert time.monotonic() < deadline, "the lab server did not listen"
            time.sleep(0.05)


async def run(*argv: str) -> bytes:
    """Run a client to its end; its stdout."""
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    assert process.returncode == 0, f"{argv[0]} failed"
    return out
