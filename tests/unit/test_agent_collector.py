"""How the agent runs Python's cyclic collector: the mechanisms that kept it from walking the
same objects over and over under a flood must not silently go away."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import YOUNG_COLLECTION_THRESHOLD
from agent.events import ConnectionClosed, ConnectionOpened, DataReceived, Gap, Stats
from agent.journal import Journal
from agent.wire import decode_batch, encode_batch

pytestmark = pytest.mark.timeout(60)


def test_events_made_or_decoded_are_invisible_to_the_collector() -> None:
    # msgspec leaves a struct of scalars untracked, so the journal's 200,000 events are never
    # walked by a collection; a container field on an event type would change that.
    made = [
        ConnectionOpened(
            ts=1.0, conn=0, client="198.18.0.1", client_port=1, server="198.18.0.2", server_port=2
        ),
        DataReceived(ts=1.0, conn=0, direction="in", data=b"GET"),
        Gap(ts=1.0, conn=0, direction="out", length=2),
        ConnectionClosed(ts=1.0, conn=0, reason="fin"),
        Stats(
            ts=1.0,
            packets=1,
            bytes=3,
            kernel_packets=1,
            kernel_drops=0,
            open_connections=0,
            gaps=1,
            gap_bytes=2,
        ),
    ]
    journal = Journal()
    journal.append(made)
    held = journal.read(0)
    assert len(held) == len(made)
    assert not any(gc.is_tracked(event) for event in held)
    assert not any(gc.is_tracked(event) for event in decode_batch(encode_batch(held)))


def test_the_agent_collects_young_objects_rarely_from_its_start() -> None:
    # Checked in a process of its own: the agent's main sets up logging and the collector.
    script = (
        "import gc, agent.cli\n"
        "code = agent.cli.main(['--netns', 'lab', '--port', '70000'])\n"
        "print(code, gc.get_threshold()[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.split() == ["2", str(YOUNG_COLLECTION_THRESHOLD)]
    assert "out of range" in done.stderr
