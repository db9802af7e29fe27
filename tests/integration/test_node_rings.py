"""A node agent's pod ring grows under traffic, goes back to small once the pod is idle (which
the agent's mappings show), and can grow again: the big ring's place among the agent's few is
given back in between."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from agent.budget import NODE_BLOCK_SIZE, Buffers
from agent.events import PodTapped
from agent.journal import Journal
from agent.node import NodeSniffer
from tests.integration.test_growing_ring import mapped_ring_bytes
from tests.integration.test_node_agent import FakePod, fake_pod

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]

PORT = 8080
SMALL, BIG = 2, 16  # blocks: a read finding one block waiting is half the small ring


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def requests(pod: FakePod, first: int, count: int) -> None:
    for number in range(first, first + count):
        assert pod.get(f"/to/{number}") == pod.name


def test_an_idle_pod_s_grown_ring_goes_back_to_small_and_may_grow_again() -> None:
    journal = Journal()
    # One place for a big ring: growing again needs the place the shrink gave back.
    buffers = Buffers(NODE_BLOCK_SIZE, SMALL, 4 << 20, grown_block_count=BIG, grown_rings=1)
    sniffer = NodeSniffer(
        journal, frozenset({PORT}), buffers, stats_interval=0.1, quiet_seconds=0.5
    )
    baseline = mapped_ring_bytes()

    def mapped_blocks() -> int:
        return (mapped_ring_bytes() - baseline) // NODE_BLOCK_SIZE

    with fake_pod("web-1") as pod:
        sniffer.start()
        try:
            sniffer.tap("default/web-1", pod.container_id)
            wait_for(lambda: any(isinstance(e, PodTapped) for e in journal.read(0)))
            assert mapped_blocks() == SMALL
            requests(pod, 0, 20)
            wait_for(lambda: mapped_blocks() == BIG)
            # Idle now: no socket polls readable, the stats tick looks at the big ring.
            wait_for(lambda: mapped_blocks() == SMALL)
            requests(pod, 20, 20)
            wait_for(lambda: mapped_blocks() == BIG)
            wait_for(lambda: mapped_blocks() == SMALL)
        finally:
            sniffer.stop()
    assert sniffer.failure is None
    # That no frame is lost or repeated in a switch is test_growing_ring's: a ring this small
    # may drop frames of its own before it grows, which would blur it here.
