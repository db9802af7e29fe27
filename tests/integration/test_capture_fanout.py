"""PACKET_FANOUT: two captures in one group share the connections, never split one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from agent.capture import Capture
from agent.netns import named_namespace
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.timeout(40)]

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


def test_both_directions_of_a_connection_reach_the_same_member(lab: Lab) -> None:
    server = lab.popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == b"ready\n"
        group = os.getpid() & 0xFFFF
        namespace = named_namespace(lab.name)
        with (
            Capture(namespace, [PORT], fanout_group=group) as first,
            Capture(namespace, [PORT], fanout_group=group) as second,
        ):
            client_ports = set()
            for index in range(40):
                with socket.create_connection((lab.ns_ip, PORT)) as client:
                    client_ports.add(client.getsockname()[1])
                    message = b"ping %d\n" % index
                    client.sendall(message)
                    assert client.recv(100) == message
            members: dict[int, set[tuple[int, str]]] = defaultdict(set)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                for member, capture in enumerate((first, second)):
                    for _, _, segment in capture.read_batch(0.05):
                        client_port = segment.sport if segment.dport == PORT else segment.dport
                        direction = "in" if segment.dport == PORT else "out"
                        members[client_port].add((member, direction))
    finally:
        server.kill()
        server.wait()
    assert set(members) == client_ports
    for seen in members.values():
        assert len({member for member, _ in seen}) == 1  # one member got the whole connection
        assert {direction for _, direction in seen} == {"in", "out"}
    shares = [sum(1 for s in members.values() if (m, "in") in s) for m in (0, 1)]
    assert min(shares) > 0, shares
