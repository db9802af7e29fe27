"""The agent's buffers sized from its cgroup's memory limit (agent/budget.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.budget import MIB, buffers_for, cgroup_memory_limit

pytestmark = pytest.mark.timeout(10)


def test_without_a_limit_the_buffers_are_the_largest() -> None:
    host = buffers_for(None, node=False)
    assert (host.ring_bytes, host.journal_bytes) == (64 * MIB, 64 * MIB)
    node = buffers_for(None, node=True)
    assert node.ring_bytes == 2 * MIB
    assert node.block_size == 256 * 1024
    assert (node.grown_block_count * node.block_size, node.grown_rings) == (32 * MIB, 16)


def test_a_limit_gives_a_quarter_to_the_journal_and_a_quarter_to_rings() -> None:
    host = buffers_for(256 * MIB, node=False)
    assert (host.ring_bytes, host.journal_bytes) == (64 * MIB, 64 * MIB)
    small = buffers_for(64 * MIB, node=False)
    assert (small.ring_bytes, small.journal_bytes) == (16 * MIB, 16 * MIB)
    node = buffers_for(64 * MIB, node=True)
    assert node.ring_bytes == MIB  # a sixteenth of the rings' quarter, per tapped pod
    # Grown rings share a quarter too: an eighth each, so two of them.
    assert (node.grown_block_count * node.block_size, node.grown_rings) == (8 * MIB, 2)
    limited = buffers_for(256 * MIB, node=True)
    assert (limited.grown_block_count * limited.block_size, limited.grown_rings) == (32 * MIB, 2)
    tiny = buffers_for(8 * MIB, node=True)
    assert (tiny.ring_bytes, tiny.journal_bytes) == (MIB, 4 * MIB)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_lowest_limit_on_the_way_up_of_a_v2_cgroup(tmp_path: Path) -> None:
    write(tmp_path / "proc/self/cgroup", "0::/kubepods/pod1/c1\n")
    root = tmp_path / "cg"
    write(root / "kubepods/pod1/c1/memory.max", "max\n")
    write(root / "kubepods/pod1/memory.max", f"{256 * MIB}\n")
    write(root / "kubepods/memory.max", f"{1024 * MIB}\n")
    assert cgroup_memory_limit(str(tmp_path / "proc"), str(root)) == 256 * MIB


def test_a_v1_memory_cgroup_and_none_at_all(tmp_path: Path) -> None:
    write(tmp_path / "proc/self/cgroup", "4:memory:/docker/c1\n3:cpu:/docker/c1\n")
    root = tmp_path / "cg"
    write(root / "memory/docker/c1/memory.limit_in_bytes", f"{128 * MIB}\n")
    assert cgroup_memory_limit(str(tmp_path / "proc"), str(root)) == 128 * MIB
    write(root / "memory/docker/c1/memory.limit_in_bytes", "9223372036854771712\n")
    assert cgroup_memory_limit(str(tmp_path / "proc"), str(root)) is None
    assert cgroup_memory_limit(str(tmp_path / "nowhere"), str(root)) is None
