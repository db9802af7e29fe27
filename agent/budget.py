"""How much memory the agent's buffers may take: sized from the cgroup's memory limit.

An agent in a pod with a 256 MiB limit that sizes its capture ring and journal for a whole
machine is killed by the kernel under the first burst. So the agent reads its own cgroup's
limit (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``, the lowest on the way up) and gives
a quarter of it to the journal and a quarter to capture rings, within fixed bounds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MIB = 1 << 20
# A block must hold the largest frame a ring is handed (64 KiB with segmentation offload).
NODE_BLOCK_SIZE = 256 * 1024
HOST_BLOCK_SIZE = MIB
# Per tapped pod of a node agent. The kernel maps the whole ring into the agent at once, so it
# counts in full against the pod's memory: with 2 MiB rings a node agent tapping 5 pods idled at
# 40 MB RSS, with 8 MiB ones at 71 MB. A single-target agent keeps its 64 MiB for floods.
NODE_RING_MIN, NODE_RING_MAX = MIB, 2 * MIB
# A pod whose traffic outruns its small ring moves to a big one (agent.growing_ring): 2 to 16
# MiB rings all lost a fifth of a saturating load that 64 MiB took whole (bench_node_ring).
# The big rings share what the small ones do, a quarter of the limit: with 256 MiB, two of 32.
NODE_GROWN_RING_MAX = 32 * MIB
HOST_RING_MIN, HOST_RING_MAX = 4 * MIB, 64 * MIB
JOURNAL_MIN, JOURNAL_MAX = 4 * MIB, 64 * MIB
# How many pods a node agent's ring share is planned for: more still fit, with smaller rings
# each would be unfair to those already tapped, so the share is fixed up front.
PLANNED_PODS = 16
_UNLIMITED = 1 << 60


@dataclass(frozen=True, slots=True)
class Buffers:
    block_size: int
    block_count: int
    """Of each capture ring (one per tapped namespace)."""
    journal_bytes: int
    grown_block_count: int = 0
    """Of a node agent's ring once grown (0: rings never grow)."""
    grown_rings: int = 0
    """How many of a node agent's rings may be grown at once (a grown ring goes back to small
    after a quiet spell, agent.growing_ring)."""

    @property
    def ring_bytes(self) -> int:
        return self.block_size * self.block_count


def buffers_for(memory_limit: int | None, *, node: bool) -> Buffers:
    """The buffers of an agent limited to ``memory_limit`` bytes (None: no limit)."""
    journal = _clamp(
        JOURNAL_MAX if memory_limit is None else memory_limit // 4, JOURNAL_MIN, JOURNAL_MAX
    )
    if not node:
        share = HOST_RING_MAX if memory_limit is None else memory_limit // 4
        ring = _clamp(share, HOST_RING_MIN, HOST_RING_MAX)
        return Buffers(HOST_BLOCK_SIZE, ring // HOST_BLOCK_SIZE, journal)
    block = NODE_BLOCK_SIZE
    share = NODE_RING_MAX if memory_limit is None else memory_limit // 4 // PLANNED_PODS
    ring = _clamp(share, NODE_RING_MIN, NODE_RING_MAX)
    if memory_limit is None:
        grown, grown_rings = NODE_GROWN_RING_MAX, PLANNED_PODS
    else:
        grown = _clamp(memory_limit // 8, ring, NODE_GROWN_RING_MAX)
        grown_rings = memory_limit // 4 // grown
    return Buffers(block, ring // block, journal, grown // block, grown_rings)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def cgroup_memory_limit(
    proc_root: str = "/proc", cgroup_root: str = "/sys/fs/cgroup"
) -> int | None:
    """The memory limit of this process's cgroup (the lowest of it and its parents), or None."""
    try:
        with open(f"{proc_root}/self/cgroup") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    limits: list[int] = []
    for line in lines:
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        if controllers == "":
            base, name = cgroup_root, "memory.max"
            if os.path.exists(f"{cgroup_root}/unified/cgroup.procs"):
                base = f"{cgroup_root}/unified"  # hybrid layout: v2 lives under unified/
        elif "memory" in controllers.split(","):
            base, name = f"{cgroup_root}/memory", "memory.limit_in_bytes"
        else:
            continue
        limits += _limits_up(base, path, name)
    found = [limit for limit in limits if limit < _UNLIMITED]
    return min(found) if found else None


def _limits_up(base: str, path: str, name: str) -> list[int]:
    limits = []
    parts = [part for part in path.split("/") if part]
    for depth in range(len(parts), -1, -1):
        directory = "/".join([base, *parts[:depth]])
        try:
            with open(f"{directory}/{name}") as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return limits
