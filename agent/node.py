"""A node agent: one capture thread following every pod a client asked it to tap.

Each tapped pod has its own capture socket (opened inside the pod's network namespace) and its
own reassembler; a single thread polls all the sockets, so a node agent costs one thread however
many pods it taps. Connection ids are renumbered agent-wide (each reassembler counts from 0) and
every ``ConnectionOpened`` names its pod. Pods join and leave while the agent runs: the event
loop opens a pod's capture (``tap``, blocking: call it in a thread) and hands it to the capture
thread, which journals ``PodTapped`` before the first of its connections; ``untap`` closes the
pod's connections, then journals ``PodUntapped``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from agent.budget import Buffers
from agent.capture import Capture
from agent.errors import UserError
from agent.events import (
    AnyEvent,
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    Gap,
    PodTapFailed,
    PodTapped,
    PodUntapped,
    Stats,
)
from agent.growing_ring import QUIET_SECONDS, GrowingCapture
from agent.journal import Journal
from agent.netns import container_namespace
from agent.requests import AnyRequest, TapPod, UntapPod
from agent.sniffer import STATS_INTERVAL
from agent.tcp import Reassembler

log = logging.getLogger("agent.node")

POLL_MS = 100


@dataclass
class _Pod:
    name: str
    container_id: str
    capture: GrowingCapture
    reassembler: Reassembler
    ids: dict[int, int] = field(default_factory=dict)
    """This pod's reassembler ids of open connections -> agent-wide ids."""


class NodeSniffer:
    """Captures the tapped pods into ``journal`` until :meth:`stop`. ``tap``/``untap`` may be
    called from any thread; everything else about the pods belongs to the capture thread."""

    def __init__(
        self,
        journal: Journal,
        ports: frozenset[int],
        buffers: Buffers,
        *,
        on_failure: Callable[[BaseException], None] | None = None,
        stats_interval: float = STATS_INTERVAL,
        quiet_seconds: float = QUIET_SECONDS,
    ) -> None:
        self._journal = journal
        self._ports = ports
        self._buffers = buffers
        self._on_failure = on_failure
        self._stats_interval = stats_interval
        self._quiet_seconds = quiet_seconds  # before a pod's big ring goes back to small
        self._lock = threading.Lock()
        self._arriving: list[_Pod] = []
        self._leaving: list[tuple[str, str]] = []
        self._wanted: dict[str, str] = {}  # pod -> container id, tapped or being opened
        self._pods: dict[str, _Pod] = {}
        self._next_id = 0
        self._packets = self._bytes = self._kernel_packets = self._kernel_drops = 0
        self._gaps = self._gap_bytes = 0
        self._grown = 0  # rings grown (capture thread only)
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="podtap-node-capture", daemon=True)
        self.failure: BaseException | None = None

    @property
    def tapped(self) -> list[str]:
        with self._lock:
            return sorted(self._wanted)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def handle(self, request: AnyRequest) -> None:
        """Blocking (opens a capture in the pod's namespace): call it in a thread."""
        if isinstance(request, TapPod):
            self.tap(request.pod, request.container_id)
        elif isinstance(request, UntapPod):
            self.untap(request.pod, "the client asked")

    def tap(self, pod: str, container_id: str) -> None:
        with self._lock:
            if pod in self._wanted:
                return
            self._wanted[pod] = container_id
        try:
            namespace = container_namespace(container_id)
            capture = GrowingCapture(
                partial(
                    Capture, namespace, sorted(self._ports), block_size=self._buffers.block_size
                ),
                self._buffers.block_count,
                self._buffers.grown_block_count,
                may_grow=self._may_grow,
                released=self._big_ring_released,
                quiet_seconds=self._quiet_seconds,
            )
        except (UserError, OSError) as error:
            with self._lock:
                self._wanted.pop(pod, None)
            reason = str(error) if isinstance(error, UserError) else f"capture failed: {error}"
            log.warning("cannot tap %s: %s", pod, reason)
            self._journal.append([PodTapFailed(ts=time.time(), pod=pod, reason=reason)])
            return
        with self._lock:
            if self._wanted.get(pod) != container_id:  # untapped while it was being opened
                capture.close()
                return
            self._arriving.append(_Pod(pod, container_id, capture, Reassembler(self._ports)))
        self._wake()

    def untap(self, pod: str, reason: str) -> None:
        with self._lock:
            if self._wanted.pop(pod, None) is None:
                return
            self._leaving.append((pod, reason))
        self._wake()

    def _may_grow(self) -> bool:
        """Asked by a pod's ring in the capture thread when it would grow: takes a place among
        the big rings if one is free."""
        if self._grown >= self._buffers.grown_rings:
            return False
        self._grown += 1
        return True

    def _big_ring_released(self) -> None:
        """A pod's big ring went back to small, or closed (capture thread): its place is free."""
        self._grown -= 1

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")

    # -- the capture thread ------------------------------------------------------------------

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._wake_read, select.POLLIN)
        by_fd: dict[int, _Pod] = {}
        try:
            next_tick = time.time() + self._stats_interval
            while not self._stopping.is_set():
                self._apply_changes(poller, by_fd)
                events: list[AnyEvent] = []
                for fd, _ in poller.poll(POLL_MS):
                    if fd == self._wake_read:
                        with contextlib.suppress(OSError):
                            os.read(self._wake_read, 4096)
                        continue
                    pod = by_fd.get(fd)
                    if pod is not None:
                        events += self._read(pod, poller, by_fd)
                now = time.time()
                if now >= next_tick:
                    for pod in list(by_fd.values()):
                        if pod.capture.on_big_ring:
                            # An idle pod's socket never polls readable: its big ring is read
                            # here too, so that it can go back to the small one.
                            events += self._read(pod, poller, by_fd)
                        events += self._renumber(pod, pod.reassembler.expire(now))
                    events.append(self._stats(now))
                    next_tick = now + self._stats_interval
                self._journal.append(events)
            now = time.time()
            closing: list[AnyEvent] = []
            for pod in list(by_fd.values()):
                closing += self._remove(pod, poller, by_fd, now, None)
            closing.append(self._stats(now))
            self._journal.append(closing)
        except BaseException as error:
            self.failure = error
            log.exception("node capture failed")
            if self._on_failure is not None:
                self._on_failure(error)

    def _apply_changes(self, poller: select.poll, by_fd: dict[int, _Pod]) -> None:
        with self._lock:
            arriving, self._arriving = self._arriving, []
            leaving, self._leaving = self._leaving, []
        events: list[AnyEvent] = []
        now = time.time()
        # Leaving first: a pod untapped and tapped again must lose its old capture, not the new.
        for name, reason in leaving:
            pod = self._pods.get(name)
            if pod is not None:
                events += self._remove(pod, poller, by_fd, now, reason)
        for pod in arriving:
            self._pods[pod.name] = pod
            by_fd[pod.capture.fileno()] = pod
            poller.register(pod.capture.fileno(), select.POLLIN | select.POLLERR)
            events.append(PodTapped(ts=now, pod=pod.name, interfaces=list(pod.capture.interfaces)))
            log.info(
                "tapping %s (container %s) on %s",
                pod.name,
                pod.container_id,
                ", ".join(pod.capture.interfaces),
            )
        self._journal.append(events)

    def _read(self, pod: _Pod, poller: select.poll, by_fd: dict[int, _Pod]) -> list[AnyEvent]:
        try:
            frames = pod.capture.read_frames(0)
        except OSError as error:
            # The pod's namespace went away under the socket: that pod ends, not the agent.
            with self._lock:
                self._wanted.pop(pod.name, None)
            return self._remove(pod, poller, by_fd, time.time(), f"capture failed: {error}")
        self._packets += len(frames)
        self._bytes += sum([len(frame[-1]) for frame in frames])
        return self._renumber(pod, pod.reassembler.feed_frames(frames))

    def _remove(
        self,
        pod: _Pod,
        poller: select.poll,
        by_fd: dict[int, _Pod],
        now: float,
        reason: str | None,
    ) -> list[AnyEvent]:
        """Close the pod's connections and its capture; ``reason`` None: the agent stops."""
        events = self._renumber(pod, pod.reassembler.close_all(now))
        with contextlib.suppress(OSError):
            packets, drops = pod.capture.kernel_counters()
            self._kernel_packets += packets
            self._kernel_drops += drops
        self._gaps += pod.reassembler.gaps
        self._gap_bytes += pod.reassembler.gap_bytes
        fd = pod.capture.fileno()
        by_fd.pop(fd, None)
        with contextlib.suppress(KeyError, ValueError):
            poller.unregister(fd)
        pod.capture.close()  # gives back its place among the big rings, if it had one
        self._pods.pop(pod.name, None)
        if reason is not None:
            events.append(PodUntapped(ts=now, pod=pod.name, reason=reason))
            log.info("untapped %s: %s", pod.name, reason)
        return events

    def _renumber(self, pod: _Pod, events: list[AnyEvent]) -> list[AnyEvent]:
        ids = pod.ids
        for event in events:
            if isinstance(event, DataReceived | Gap):
                event.conn = ids[event.conn]
            elif isinstance(event, ConnectionOpened):
                ids[event.conn] = event.conn = self._next_id
                event.pod = pod.name
                self._next_id += 1
            elif isinstance(event, ConnectionClosed):
                event.conn = ids.pop(event.conn)
        return events

    def _stats(self, now: float) -> Stats:
        kernel_packets, kernel_drops = self._kernel_packets, self._kernel_drops
        gaps, gap_bytes, open_connections, waiting = self._gaps, self._gap_bytes, 0, 0
        for pod in self._pods.values():
            with contextlib.suppress(OSError):
                packets, drops = pod.capture.kernel_counters()
                # Capture keeps running sums: fold them in only when the pod leaves.
                kernel_packets += packets
                kernel_drops += drops
                waiting += pod.capture.waiting()
            gaps += pod.reassembler.gaps
            gap_bytes += pod.reassembler.gap_bytes
            open_connections += pod.reassembler.open_connections
        return Stats(
            ts=now,
            packets=self._packets,
            bytes=self._bytes,
            kernel_packets=kernel_packets,
            kernel_drops=kernel_drops,
            open_connections=open_connections,
            gaps=gaps,
            gap_bytes=gap_bytes,
            ring_waiting=waiting,
        )
