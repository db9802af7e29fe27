"""The agent without msgspec (agent/msgspec_subset.py): what it writes, msgspec reads, and the
other way round. The agent runs in ``python -S``: no site-packages, so no msgspec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.events import ConnectionOpened, DataReceived, Hello, PodTapped, Stats
from agent.requests import TapPod, UntapPod, encode_request
from agent.wire import decode_batch

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[2]

WRITE_BATCH = """
import sys
from agent.codec import msgspec
assert msgspec.__name__ == "agent.msgspec_subset", msgspec
from agent.events import ConnectionOpened, DataReceived, Hello, PodTapped, Stats
from agent.wire import encode_batch
events = [
    Hello(ts=1.5, protocol=2, version="0.1.0", agent_id="a1", target="node/n1", ports=[80],
          interfaces=[], oldest_seq=1, next_seq=1),
    PodTapped(seq=1, ts=2.0, pod="ns/web-1", interfaces=["lo", "eth0"]),
    ConnectionOpened(seq=2, ts=2.25, conn=0, client="10.0.0.9", client_port=54321,
                     server="10.0.0.2", server_port=8080, pod="ns/web-1"),
    DataReceived(seq=3, ts=2.5, conn=0, direction="in", data=b"GET / HTTP/1.1\\r\\n" * 40),
    Stats(seq=4, ts=3.0, packets=2**40, bytes=70000, kernel_packets=3, kernel_drops=0,
          open_connections=-1, gaps=0, gap_bytes=0),
]
sys.stdout.buffer.write(encode_batch(events))
"""

READ_REQUESTS = """
import sys
from agent.requests import decode_request
for line in sys.stdin.buffer.read().split(b"\\n"):
    if line:
        print(repr(decode_request(bytes.fromhex(line.decode()))))
"""


def without_site_packages(code: str, stdin: bytes = b"") -> bytes:
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], input=stdin, capture_output=True, cwd=REPO,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_a_batch_encoded_without_msgspec_reads_the_same_with_it() -> None:
    events = decode_batch(without_site_packages(WRITE_BATCH))
    assert [type(e) for e in events] == [Hello, PodTapped, ConnectionOpened, DataReceived, Stats]
    hello, tapped, opened, data, stats = events
    assert isinstance(hello, Hello)
    assert (hello.agent_id, hello.target, hello.ports) == ("a1", "node/n1", [80])
    assert tapped == PodTapped(seq=1, ts=2.0, pod="ns/web-1", interfaces=["lo", "eth0"])
    assert isinstance(opened, ConnectionOpened)
    assert (opened.pod, opened.client_port, opened.mid_stream) == ("ns/web-1", 54321, False)
    assert isinstance(data, DataReceived)
    assert data.data == b"GET / HTTP/1.1\r\n" * 40
    assert isinstance(stats, Stats)
    assert (stats.packets, stats.open_connections) == (2**40, -1)


def test_requests_encoded_with_msgspec_read_the_same_without_it() -> None:
    requests = [TapPod(pod="ns/web-1", container_id="containerd://" + "ab" * 32),
                UntapPod(pod="ns/" + "x" * 300)]  # fmt: skip
    stdin = b"".join(encode_request(r).hex().encode() + b"\n" for r in requests)
    lines = without_site_packages(READ_REQUESTS, stdin).decode().splitlines()
    assert lines == [
        f"TapPod(pod='ns/web-1', container_id='containerd://{'ab' * 32}')",
        f"UntapPod(pod='ns/{'x' * 300}')",
    ]


def test_garbage_is_a_decode_error_without_msgspec() -> None:
    code = (
        "from agent.requests import decode_request\n"
        "from agent.codec import msgspec\n"
        "for bad in (b'', b'\\xc1', b'\\x81\\xa4type\\xa4nope', b'\\x91\\x01', b'\\xda\\x00'):\n"
        "    try:\n"
        "        decode_request(bad)\n"
        "    except (msgspec.DecodeError, msgspec.ValidationError) as error:\n"
        "        print(type(error).__name__)\n"
    )
    assert without_site_packages(code).decode().split() == [
        "DecodeError",
        "DecodeError",
        "ValidationError",
        "ValidationError",
        "DecodeError",
    ]
