"""A pod's capture ring that grows under pressure loses and repeats no frame in the switch."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial

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
    with socket.create_connection((lab.ns_ip, PORT)) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for number in range(first, first + count):
            message = b"message %06d\n" % number
            client.sendall(message)
            received = b""
            while len(received) < len(message):
                received += client.recv(100)
            assert received == message
            if pause:
                time.sleep(pause)


def payloads(frames: list[Frame]) -> Counter[bytes]:
    return Counter(frame[6] for frame in frames if frame[6])


def expected(first: int, count: int) -> Counter[bytes]:
    # Each message twice: the request and its echo.
    return Counter({b"message %06d\n" % n: 2 for n in range(first, first + count)})


def growing(lab: Lab, small: int, big: int) -> GrowingCapture:
    ring = partial(Capture, named_namespace(lab.name), [PORT], block_size=NODE_BLOCK_SIZE)
    return GrowingCapture(ring, small, big)


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
