"""A pod's capture that starts on a small ring and moves to a big one when traffic presses.

A node agent maps every pod's ring into its memory in full, so idle pods must cost little; but
a small ring overflows as soon as the reader falls behind for a moment (bench_node_ring: a
2 MiB ring lost 28 % of a saturating load that a 64 MiB ring took whole). So each pod starts on
the small ring, and the first time a read finds half of it waiting, or the kernel reports a
drop, a big ring is opened on a second socket and the small one retired.

No frame is lost or read twice in the switch: from the moment the big ring exists the kernel
hands every frame to both sockets. The small ring is read up to that moment and past it (its
last, partly filled block is handed over within the block timeout), then closed; the frames it
gave after the big ring opened are remembered, and the big ring's copies of them are skipped.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable

from agent.capture import Capture
from agent.errors import UserError
from agent.packet import FlowKey, Frame

log = logging.getLogger("agent.growing_ring")

GROW_WHEN_WAITING = 0.5
"""The share of the small ring's blocks found waiting at one read that makes it grow."""
BLOCK_TIMEOUT = 0.01
"""The rings' block timeout (agent.capture's default): a partly filled block is handed over
after it."""
CLOCK_SLACK = 0.05
"""Seconds of leeway between the clock read here and the kernel's frame timestamps."""

FrameIdentity = tuple[FlowKey, int, int, int, int]


def _identity(frame: Frame) -> FrameIdentity:
    _, _, key, seq, ack, flags, payload = frame
    return key, seq, ack, flags, len(payload)


class GrowingCapture:
    """What agent.node reads a pod through: ``read_frames``, ``kernel_counters``, ``close``,
    and a ``fileno`` that stays the same when the ring changes (an epoll set holding it)."""

    def __init__(
        self,
        open_ring: Callable[..., Capture],
        small: int,
        big: int,
        *,
        may_grow: Callable[[], bool] = lambda: True,
    ) -> None:
        """``open_ring(block_count=N)`` opens a ring (blocking); ``small`` and ``big`` are block
        counts (``big <= small``: the ring never grows); ``may_grow`` is asked, once, before
        growing (a node agent lets only so many rings grow)."""
        self._open_ring = open_ring
        self._may_grow = may_grow
        self._small_blocks = small
        self._big_blocks = big
        self._ring = open_ring(block_count=small)
        self.interfaces = list(self._ring.interfaces)
        self._epoll = select.epoll()
        self._epoll.register(self._ring.fileno(), select.EPOLLIN | select.EPOLLERR)
        self.grown = big <= small
        """It grew, or tried to, or never will: it does not try again."""
        self.on_big_ring = False
        self._pressed = False
        self._retired_packets = self._retired_drops = 0
        self._repeats: set[FrameIdentity] = set()
        self._repeats_until = 0.0

    def fileno(self) -> int:
        return self._epoll.fileno()

    def read_frames(self, timeout: float) -> list[Frame]:
        ring = self._ring
        blocks_before = ring.blocks
        frames = ring.read_frames(timeout)
        if self._repeats:
            frames = self._without_repeats(frames)
        waiting = ring.blocks - blocks_before
        if not self.grown and (self._pressed or waiting >= self._small_blocks * GROW_WHEN_WAITING):
            frames += self.grow()
        return frames

    def kernel_counters(self) -> tuple[int, int]:
        """(packets, drops) of every ring this pod had, cumulative."""
        packets, drops = self._ring.kernel_counters()
        if drops and not self.grown:
            self._pressed = True  # grown at the next read, in the capture thread
        return self._retired_packets + packets, self._retired_drops + drops

    def waiting(self) -> int:
        """Frames in the current ring not read yet (see Capture.waiting)."""
        return self._ring.waiting()

    def grow(self) -> list[Frame]:
        """Move to the big ring; returns the frames the small one still held (capture thread
        only). A big ring the kernel refuses leaves the small one in place, for good."""
        self.grown = True
        if not self._may_grow():
            log.info("capture ring kept small: the agent's share for big rings is taken")
            return []
        small = self._ring
        try:
            big = self._open_ring(block_count=self._big_blocks)
        except (UserError, OSError) as error:
            log.warning("capture ring kept small: %s", error)
            return []
        opened = time.time()
        time.sleep(2 * BLOCK_TIMEOUT)
        # Every block the small ring has: what came before the big ring opened, and some after.
        frames = small.read_frames(0, max_blocks=self._small_blocks)
        packets, drops = small.kernel_counters()
        self._retired_packets += packets
        self._retired_drops += drops
        self._epoll.unregister(small.fileno())
        small.close()
        self._repeats_until = time.time() + CLOCK_SLACK
        self._repeats = {_identity(f) for f in frames if f[0] >= opened - CLOCK_SLACK}
        self._ring = big
        self.on_big_ring = True
        self._epoll.register(big.fileno(), select.EPOLLIN | select.EPOLLERR)
        log.info("capture ring grown to %d blocks", self._big_blocks)
        return frames

    def _without_repeats(self, frames: list[Frame]) -> list[Frame]:
        repeats = self._repeats
        kept = []
        for frame in frames:
            if frame[0] > self._repeats_until:
                repeats.clear()
            identity = _identity(frame)
            if identity in repeats:
                repeats.discard(identity)
            else:
                kept.append(frame)
        return kept

    def close(self) -> None:
        self._ring.close()
        self._epoll.close()
