"""A pod's capture that starts on a small ring, moves to a big one when traffic presses, and
goes back when it has been quiet for a while.

A node agent maps every pod's ring into its memory in full, so idle pods must cost little; but
a small ring overflows as soon as the reader falls behind for a moment (bench_node_ring: a
2 MiB ring lost 28 % of a saturating load that a 64 MiB ring took whole). So each pod starts on
the small ring, and when a read finds half of it waiting, or the kernel reports a drop, a big
ring is opened on a second socket and the small one retired. A big ring that then stays quiet
for ``QUIET_SECONDS`` (no read finds more than ``SHRINK_WHEN_WAITING`` of the small ring's
blocks waiting, no drop) is retired the same way for a new small ring, which may grow again;
otherwise a node agent that once saw a burst on 20 pods would keep their big rings mapped for
good. A node agent lets only so many rings be big at once (``may_grow``); a ring that shrinks or
closes gives its place back (``released``).

No frame is lost or read twice in either switch: from the moment the new ring exists the kernel
hands every frame to both sockets. The retiring ring is read up to that moment and past it (its
last, partly filled block is handed over within the block timeout), then closed; the frames it
gave after the new ring opened are remembered, and the new ring's copies of them are skipped.
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
SHRINK_WHEN_WAITING = 0.125
"""A read on the big ring that finds more than this share of the small ring's blocks waiting
(at least one block) keeps the big ring. A quarter of the grow threshold: a reader that stayed
this far ahead had the small ring's room four times over, so the pod does not bounce between
the rings as its load wavers around one threshold."""
QUIET_SECONDS = 30.0
"""How long a big ring must stay quiet before it goes back to the small one. Bursts that recur
within half a minute (a batch job, a client's retry loop) keep their big ring instead of losing
the start of each burst to a small one; an idle pod gives its big ring (up to 32 MiB,
agent.budget) back within a stats tick of that."""
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
        released: Callable[[], None] = lambda: None,
        quiet_seconds: float = QUIET_SECONDS,
    ) -> None:
        """``open_ring(block_count=N)`` opens a ring (blocking); ``small`` and ``big`` are block
        counts (``big <= small``: the ring never grows). ``may_grow`` is asked before growing
        and takes a place for a big ring if it answers True; ``released`` gives the place back
        when the big ring is retired or closed (a node agent lets only so many rings be big)."""
        self._open_ring = open_ring
        self._may_grow = may_grow
        self._released = released
        self._quiet_seconds = quiet_seconds
        self._small_blocks = small
        self._big_blocks = big
        self._ring = open_ring(block_count=small)
        self.interfaces = list(self._ring.interfaces)
        self._epoll = select.epoll()
        self._epoll.register(self._ring.fileno(), select.EPOLLIN | select.EPOLLERR)
        self._can_grow = big > small  # until the kernel refuses a big ring
        self._refusal_logged = False
        self.on_big_ring = False
        self._pressed = False  # the kernel dropped frames since the last read
        self._drops_known = 0
        self._busy_at = 0.0  # monotonic time of the big ring's last busy read
        self._quiet_waiting = max(1, int(small * SHRINK_WHEN_WAITING))
        self._retired_packets = self._retired_drops = 0
        self._repeats: set[FrameIdentity] = set()
        self._repeats_until = 0.0

    def fileno(self) -> int:
        return self._epoll.fileno()

    @property
    def ring_bytes(self) -> int:
        """The size of the ring in use (what it maps into the agent)."""
        return self._ring.ring_bytes

    def read_frames(self, timeout: float) -> list[Frame]:
        """The frames of the ring's ready blocks; may grow or shrink the ring on the way, so
        that an idle pod's reader must still call it now and then (``timeout`` 0 is enough)."""
        ring = self._ring
        blocks_before = ring.blocks
        frames = ring.read_frames(timeout)
        if self._repeats:
            frames = self._without_repeats(frames)
        waiting = ring.blocks - blocks_before
        if self.on_big_ring:
            if self._pressed or waiting > self._quiet_waiting:
                self._pressed = False
                self._busy_at = time.monotonic()
            elif time.monotonic() - self._busy_at >= self._quiet_seconds:
                frames += self.shrink()
        elif self._can_grow and (
            self._pressed or waiting >= self._small_blocks * GROW_WHEN_WAITING
        ):
            frames += self.grow()
        return frames

    def kernel_counters(self) -> tuple[int, int]:
        """(packets, drops) of every ring this pod had, cumulative."""
        packets, drops = self._ring.kernel_counters()
        drops += self._retired_drops
        if drops > self._drops_known:
            self._drops_known = drops
            self._pressed = True  # acted on at the next read, in the capture thread
        return self._retired_packets + packets, drops

    def waiting(self) -> int:
        """Frames in the current ring not read yet (see Capture.waiting)."""
        return self._ring.waiting()

    def grow(self) -> list[Frame]:
        """Move to the big ring; returns the frames the small one still held (capture thread
        only). Without a place for a big ring it stays small until pressed again; a big ring
        the kernel refuses leaves the small one in place, for good."""
        self._pressed = False
        if not self._may_grow():
            if not self._refusal_logged:
                self._refusal_logged = True
                log.info("capture ring kept small: the agent's share for big rings is taken")
            return []
        try:
            frames = self._switch(self._big_blocks)
        except (UserError, OSError) as error:
            self._can_grow = False
            self._released()
            log.warning("capture ring kept small: %s", error)
            return []
        self.on_big_ring = True
        self._busy_at = time.monotonic()
        log.info("capture ring grown to %d blocks", self._big_blocks)
        return frames

    def shrink(self) -> list[Frame]:
        """Move back to the small ring; returns the frames the big one still held (capture
        thread only). If the small ring cannot be opened, the big one stays for another quiet
        spell."""
        self._pressed = False
        try:
            frames = self._switch(self._small_blocks)
        except (UserError, OSError) as error:
            self._busy_at = time.monotonic()
            log.warning("capture ring kept big: %s", error)
            return []
        self.on_big_ring = False
        self._released()
        log.info("capture ring shrunk back to %d blocks after a quiet spell", self._small_blocks)
        return frames

    def _switch(self, block_count: int) -> list[Frame]:
        """Open a ring of ``block_count`` blocks in place of the current one; the frames only
        the retiring ring has."""
        old = self._ring
        new = self._open_ring(block_count=block_count)
        opened = time.time()
        # The old ring's counts end here: from now on the new ring counts the same packets, and
        # those the old one drops the new one has (or counts as its own drops).
        packets, drops = old.kernel_counters()
        self._retired_packets += packets
        self._retired_drops += drops
        time.sleep(2 * BLOCK_TIMEOUT)
        # Every block the old ring has: what came before the new ring opened, and some after.
        old_blocks = self._big_blocks if self.on_big_ring else self._small_blocks
        frames = old.read_frames(0, max_blocks=old_blocks)
        if self._repeats:
            frames = self._without_repeats(frames)
        self._epoll.unregister(old.fileno())
        old.close()
        self._repeats_until = time.time() + CLOCK_SLACK
        self._repeats = {_identity(f) for f in frames if f[0] >= opened - CLOCK_SLACK}
        self._ring = new
        self._epoll.register(new.fileno(), select.EPOLLIN | select.EPOLLERR)
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
        if self.on_big_ring:
            self.on_big_ring = False
            self._released()
