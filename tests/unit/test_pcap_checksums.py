"""Checksums of written pcaps: the arithmetic against scapy's, and every frame of a real file,
read back, against scapy's recomputation and tshark's verdict (IPv4 and IPv6; payloads empty,
odd, at the segment size and past it, up to 64 KiB; a segment whose checksum is 0)."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import checksum, rdpcap

from agent.events import DataReceived
from tests.ui.fakes import Script
from tui.output.ones_complement import checksum_of, word_sum
from tui.output.pcap import SEGMENT_SIZE, PcapFileWriter

pytestmark = pytest.mark.timeout(120)

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")

rng = random.Random(13)
SIZES = [1, 2, 3, 127, 1023, 1024, 1025, 1460, 16_383, SEGMENT_SIZE, SEGMENT_SIZE + 1, 65_536]
"""Odd and even, each side of the point where word_sum folds, the segment size, 64 KiB."""
PAYLOADS = [
    *(rng.randbytes(size) for size in SIZES),
    b"\xff" * 4096,  # every word is 0xFFFF: a sum of 0 modulo 0xFFFF, which is not zero
    b"\x00" * 4097,
    rng.randbytes(65_537),
]


def scapy_checksum(data: bytes) -> int:
    return int(checksum(data))


@given(st.binary(max_size=5000))
def test_word_sums_give_scapys_checksum(data: bytes) -> None:
    expected = scapy_checksum(data)
    if any(data):
        assert checksum_of(word_sum(data)) == expected
    else:
        # All words 0: the one case the arithmetic differs (see ones_complement), which no
        # header it is used for can be.
        assert (checksum_of(word_sum(data)), expected) == (0, 0xFFFF)


@pytest.mark.parametrize("data", PAYLOADS, ids=lambda data: str(len(data)))
def test_word_sums_of_large_and_uniform_payloads(data: bytes) -> None:
    expected = scapy_checksum(data)
    assert checksum_of(word_sum(data)) == (expected if any(data) else 0)


def edge_script() -> Script:
    """An IPv4 and an IPv6 connection carrying every payload each way, around a gap, an
    empty event (no packet) and both ways of closing."""
    s = Script().hello()
    s.open(1, "198.18.0.1", 40000)
    s.open(2, "fd00:7a9::1", 40001, server="fd00:7a9::2")
    for conn in (1, 2):
        for number, payload in enumerate(PAYLOADS):
            s.data(conn, "in" if number % 2 else "out", payload)
        s.data(conn, "in", b"").gap(conn, "out", 7).data(conn, "out", b"after the gap")
    s.close(1, "fin").close(2, "rst")
    return s


def write(script: Script, path: Path) -> int:
    with path.open("wb") as stream:
        writer = PcapFileWriter(stream)
        writer.write_updates(script.updates())
        writer.flush()
    return writer.packets


def verified(path: Path) -> list[Any]:
    """The file's packets, each checked against scapy's own computation of its checksums."""
    packets = list(rdpcap(str(path)))
    for number, packet in enumerate(packets, 1):
        rebuilt = packet.copy()
        del rebuilt[TCP].chksum
        if IP in rebuilt:
            del rebuilt[IP].chksum
        rebuilt = Ether(bytes(rebuilt))
        assert rebuilt[TCP].chksum == packet[TCP].chksum, f"packet {number}: TCP checksum"
        if IP in packet:
            assert rebuilt[IP].chksum == packet[IP].chksum, f"packet {number}: IPv4 checksum"
            assert packet[IP].len == len(packet) - 14
        else:
            assert packet[IPv6].plen == len(packet) - 54
    return packets


def test_every_frame_read_back_has_right_checksums_and_carries_the_bytes(tmp_path: Path) -> None:
    script = edge_script()
    path = tmp_path / "edges.pcap"
    written = write(script, path)
    packets = verified(path)
    assert len(packets) == written
    for conn, network in ((1, IP), (2, IPv6)):
        client_port = 40000 + conn - 1
        for direction, port_field in (("in", "sport"), ("out", "dport")):
            sent = b"".join(
                e.data
                for e in script.events
                if isinstance(e, DataReceived) and e.conn == conn and e.direction == direction
            )
            carried = [
                p
                for p in packets
                if network in p
                and getattr(p[TCP], port_field) == client_port
                and len(p[TCP].payload)
            ]
            assert b"".join(bytes(p[TCP].payload) for p in carried) == sent
            assert max(len(p[TCP].payload) for p in carried) == SEGMENT_SIZE
    assert {len(p[TCP].payload) % 2 for p in packets} == {0, 1}


def zero_checksum_script(filler: bytes) -> Script:
    s = Script().hello()
    s.open(1, "198.18.0.1", 40000)
    s.data(1, "in", b"GET / HTTP/1.1\r\n\r\n" + filler)
    return s


def test_a_segment_whose_words_sum_to_0xffff_has_checksum_0(tmp_path: Path) -> None:
    # Written with two zero bytes first: the checksum found is then what those two bytes must
    # hold for the words to sum to 0 modulo 0xFFFF, where the checksum field is 0 (not 0xFFFF).
    path = tmp_path / "first.pcap"
    write(zero_checksum_script(b"\x00\x00"), path)
    needed = rdpcap(str(path))[-1][TCP].chksum
    assert needed != 0
    path = tmp_path / "zero.pcap"
    write(zero_checksum_script(needed.to_bytes(2, "big")), path)
    assert verified(path)[-1][TCP].chksum == 0


@needs_tshark
def test_tshark_finds_every_checksum_good(tmp_path: Path) -> None:
    path = tmp_path / "edges.pcap"
    written = write(edge_script(), path)
    zero = tmp_path / "zero.pcap"
    write(zero_checksum_script(b"\x00\x00"), zero)
    needed = rdpcap(str(zero))[-1][TCP].chksum
    write(zero_checksum_script(needed.to_bytes(2, "big")), zero)

    def statuses(capture: Path) -> list[str]:
        done = subprocess.run(
            [
                "tshark",
                "-r",
                str(capture),
                "-o",
                "tcp.check_checksum:TRUE",
                "-o",
                "ip.check_checksum:TRUE",
                "-T",
                "fields",
                "-e",
                "tcp.checksum.status",
                "-e",
                "ip.checksum.status",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.splitlines()

    lines = statuses(path)
    assert len(lines) == written
    # 1 is "Good" (0 bad, 2 unverified); IPv6 has no header checksum, hence nothing after
    # the tab.
    assert set(lines) == {"1\t1", "1\t"}
    assert statuses(zero)[-1] == "1\t1"
