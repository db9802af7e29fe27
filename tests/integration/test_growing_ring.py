"""A pod's capture ring that grows under pressure, and shrinks back once quiet, loses and
repeats no frame in either switch."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from agent.budget import NODE_BLOCK_SIZE
from agent.capture import Capture
from agent.growing_ring import GrowingCapture
from agent.netns import named_namespace
from agent.packet import Frame
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]

PORT = 8080
ECHO_SERVER = """
import socket, threading
server = socket.create_server(("0.0.0.0", 8080))
print("ready", flush=True)
def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
while True:
    threading.Thread(target=echo, args=(server.accept()[0],), daemon=True).start()
"""


@pytest.fixture
def echo_server(lab: Lab) -> Iterator[None]:
    server = lab.popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == b"ready\n"
        yield
    finally:
        server.kill()
        server.wait()


def talk(lab: Lab, first: int, count: int, pause: float = 0.0) -> None:
    """``count`` numbered messages, each echoed before the next: one segment each way."""
    talk_in_phases(lab, [(count, pause)], first)


def payloads(frames: list[Frame]) -> Counter[bytes]:
    return Counter(frame[6] for frame in frames if frame[6])


def expected(first: int, count: int) -> Counter[bytes]:
    # Each message twice: the request and its echo.
    return Counter({b"message %06d\n" % n: 2 for n in range(first, first + count)})


def growing(lab: Lab, small: int, big: int, **options: Any) -> GrowingCapture:
    ring = partial(Capture, named_namespace(lab.name), [PORT], block_size=NODE_BLOCK_SIZE)
    return GrowingCapture(ring, small, big, **options)


def read_for(capture: GrowingCapture, seconds: float) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frames += capture.read_frames(0.02)
    return frames


def test_growing_while_traffic_flows_keeps_every_frame_once(lab: Lab, echo_server: None) -> None:
    # Room for ~300 ms of reader stall on a busy machine: this test is about the switch.
    capture = growing(lab, small=32, big=64)
    try:
        client = threading.Thread(target=talk, args=(lab, 0, 1500, 0.0005))
        client.start()
        frames = read_for(capture, 0.3)
        assert not capture.on_big_ring
        frames += capture.grow()  # mid-conversation
        assert capture.on_big_ring
        while client.is_alive():
            frames += read_for(capture, 0.05)
        client.join()
        frames += read_for(capture, 0.3)
        _, drops = capture.kernel_counters()
    finally:
        capture.close()
    assert drops == 0
    assert payloads(frames) == expected(0, 1500)


def test_drops_make_the_ring_grow_and_it_keeps_up_then(lab: Lab, echo_server: None) -> None:
    capture = growing(lab, small=8, big=256)
    try:
        # Nobody reads for a second: the 8 blocks are handed over (10 ms each) and overflow.
        talk(lab, 0, 300, pause=0.003)
        capture.read_frames(0)
        _, drops = capture.kernel_counters()
        assert drops > 0
        read_for(capture, 0.1)  # the next read grows it
        assert capture.on_big_ring
        # The same stall again: the big ring holds it.
        talk(lab, 1000, 300, pause=0.003)
        frames = read_for(capture, 0.5)
        _, drops_after = capture.kernel_counters()
    finally:
        capture.close()
    assert drops_after == drops
    assert payloads(frames) == expected(1000, 300)


def talk_in_phases(lab: Lab, phases: list[tuple[int, float]], first: int = 0) -> None:
    """On one connection, numbered echoed messages from ``first``: ``(count, pause)`` per
    phase, in turn."""
    with socket.create_connection((lab.ns_ip, PORT)) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        number = first
        for count, pause in phases:
            for _ in range(count):
                message = b"message %06d\n" % number
                client.sendall(message)
                received = b""
                while len(received) < len(message):
                    received += client.recv(100)
                assert received == message
                number += 1
                time.sleep(pause)


def mapped_ring_bytes() -> int:
    """What this process has mapped of packet sockets: the capture rings, as the kernel sees."""
    total = 0
    with open("/proc/self/maps") as maps:
        for line in maps:
            if "socket:[" in line:
                start, end = line.split()[0].split("-")
                total += int(end, 16) - int(start, 16)
    return total


def test_a_quiet_big_ring_shrinks_back_keeping_every_frame_once_in_order(
    lab: Lab, echo_server: None
) -> None:
    small, big = 16, 128
    mapped_before = mapped_ring_bytes()
    capture = growing(lab, small, big, quiet_seconds=0.4)
    sizes = [mapped_ring_bytes() - mapped_before]
    # A busy phase, then a slow one: a message every 20 ms fills at most a block per read.
    fast, slow = (800, 0.0005), (100, 0.02)
    client = threading.Thread(target=talk_in_phases, args=(lab, [fast, slow]))
    # Per read, the payloads it gave and whether the ring was big after it.
    reads: list[tuple[list[bytes], bool]] = []
    try:
        client.start()
        frames = read_for(capture, 0.15)
        reads.append(([f[6] for f in frames if f[6]], False))
        grown = capture.grow()  # under load
        assert capture.on_big_ring
        sizes.append(mapped_ring_bytes() - mapped_before)
        reads.append(([f[6] for f in grown if f[6]], True))
        while client.is_alive() or len(reads) < 3:
            frames = capture.read_frames(0.02)
            reads.append(([f[6] for f in frames if f[6]], capture.on_big_ring))
        client.join()
        frames = read_for(capture, 0.3)
        reads.append(([f[6] for f in frames if f[6]], capture.on_big_ring))
        sizes.append(mapped_ring_bytes() - mapped_before)
        _, drops = capture.kernel_counters()
        assert not capture.on_big_ring
        assert capture.ring_bytes == small * NODE_BLOCK_SIZE
    finally:
        capture.close()
    assert sizes == [small * NODE_BLOCK_SIZE, big * NODE_BLOCK_SIZE, small * NODE_BLOCK_SIZE]
    assert drops == 0
    payloads_read = [payload for read, _ in reads for payload in read]
    assert payloads_read == [b"message %06d\n" % (n // 2) for n in range(2 * 900)]
    # Traffic flowed on the big ring and again on the small one after it shrank.
    states = [big_after for read, big_after in reads if read]
    grown_at = states.index(True)
    shrunk_at = states.index(False, grown_at)
    assert grown_at > 0
    assert all(states[grown_at:shrunk_at])
    assert not any(states[shrunk_at:])
    assert shrunk_at < len(states) - 1


def chatter(lab: Lab, stop: threading.Event) -> None:
    """Echoed messages, one every half millisecond, until ``stop``."""
    with socket.create_connection((lab.ns_ip, PORT)) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while not stop.is_set():
            client.sendall(b"chatter\n")
            received = b""
            while len(received) < 8:
                received += client.recv(100)
            time.sleep(0.0005)


def test_a_big_ring_that_keeps_finding_blocks_waiting_stays_big(
    lab: Lab, echo_server: None
) -> None:
    capture = growing(lab, 16, 64, quiet_seconds=0.3)
    stop = threading.Event()
    client = threading.Thread(target=chatter, args=(lab, stop))
    try:
        client.start()
        capture.grow()
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            # The reader falls behind by ~8 blocks of 10 ms, then catches up.
            time.sleep(0.08)
            read_for(capture, 0.03)
            assert capture.on_big_ring
    finally:
        stop.set()
        client.join()
        capture.close()


def test_a_big_ring_s_place_is_given_back_when_it_shrinks_or_closes(lab: Lab) -> None:
    places = [1]

    def may_grow() -> bool:
        if places[0] == 0:
            return False
        places[0] -= 1
        return True

    def released() -> None:
        places[0] += 1

    options = {"may_grow": may_grow, "released": released, "quiet_seconds": 0.2}
    first, second = growing(lab, 4, 32, **options), growing(lab, 4, 32, **options)
    try:
        first.grow()
        assert (first.on_big_ring, places) == (True, [0])
        second.grow()
        assert (second.on_big_ring, places) == (False, [0])  # no place: it stays small
        first.read_frames(0)
        assert first.on_big_ring  # not quiet for long enough yet
        time.sleep(0.25)
        first.read_frames(0)  # an idle pod's periodic read
        assert (first.on_big_ring, places) == (False, [1])
        second.grow()
        assert (second.on_big_ring, places) == (True, [0])
    finally:
        first.close()
        second.close()
    assert places == [1]
