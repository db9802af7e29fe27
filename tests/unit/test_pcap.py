"""pcap: synthesised packets whose numbers a TCP stack would agree with, files that tshark
follows, and pcap files read back into the same events by the agent's own reassembler
(checksums have tests of their own: test_pcap_checksums)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter, RawPcapReader, rdpcap

from agent.errors import UserError
from agent.events import ConnectionClosed, ConnectionOpened, DataReceived, Gap
from tests.ui.fakes import Script, request, response, shop_script
from tui.model.store import Store
from tui.model.timestamps import LATEST
from tui.model.updates import AgentEvent
from tui.output.jsonl import RecordingHeader
from tui.output.pcap import SEGMENT_SIZE, PcapFileWriter
from tui.output.pcap_reading import guess_server_ports, ip_offset, read_pcap
from tui.output.recording import Recording

pytestmark = pytest.mark.timeout(60)

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


def write(script: Script, path: Path) -> None:
    with path.open("wb") as stream:
        writer = PcapFileWriter(stream)
        for event in script.events:
            writer.write(script.source, event)
        writer.flush()


def dissected(script: Script) -> list[Any]:
    """The frames written for ``script``, as scapy reads them, with their capture times."""
    stream = io.BytesIO()
    writer = PcapFileWriter(stream)
    for event in script.events:
        writer.write(script.source, event)
    stream.seek(0)
    packets = []
    file: Any = stream  # scapy reads a file object as well as a path
    with RawPcapReader(file) as reader:
        for frame, meta in reader:
            packet = Ether(frame)
            packet.time = meta.sec + meta.usec / 1e9
            assert bytes(packet) == frame
            packets.append(packet)
    assert writer.packets == len(packets)
    return packets


def flags(packet: Any) -> str:
    return str(packet[TCP].flags)


def test_a_connection_is_a_handshake_data_and_fin_with_consistent_numbers() -> None:
    s = Script().hello()
    s.open(1, "198.18.0.1", 40000)
    s.exchange(1, b"ping\n", b"pong!\n")
    s.close(1)
    packets = dissected(s)
    assert [flags(p) for p in packets] == ["S", "SA", "A", "PA", "PA", "FA", "FA", "A"]
    syn, syn_ack, ack, data_in, data_out, fin_c, fin_s, last = (p[TCP] for p in packets)
    assert syn_ack.ack == syn.seq + 1
    assert (ack.seq, ack.ack) == (syn.seq + 1, syn_ack.seq + 1)
    assert (data_in.seq, data_in.ack) == (syn.seq + 1, syn_ack.seq + 1)
    assert bytes(data_in.payload) == b"ping\n"
    assert (data_out.seq, data_out.ack) == (syn_ack.seq + 1, syn.seq + 1 + 5)
    assert (fin_c.seq, fin_c.ack) == (syn.seq + 6, syn_ack.seq + 7)
    assert (fin_s.seq, fin_s.ack) == (syn_ack.seq + 7, syn.seq + 7)
    assert (last.seq, last.ack) == (syn.seq + 7, syn_ack.seq + 8)
    assert [p.time for p in packets] == sorted(p.time for p in packets)
    assert (packets[0][TCP].sport, packets[0][TCP].dport) == (40000, 8080)
    assert (packets[0][IP].src, packets[0][IP].dst) == ("198.18.0.1", "198.18.0.2")


def test_a_gap_advances_the_sequence_without_bytes_and_rst_ends_it() -> None:
    s = Script().hello()
    s.open(1, "fd00:7a9::1", 40000, server="fd00:7a9::2", mid_stream=True)
    s.data(1, "in", b"a" * (SEGMENT_SIZE + 10)).gap(1, "in", 1000).data(1, "in", b"b")
    s.close(1, "rst")
    packets = dissected(s)
    assert [flags(p) for p in packets] == ["PA", "PA", "PA", "RA"]  # mid-stream: no handshake
    first, second, after_gap, rst = (p[TCP] for p in packets)
    assert len(first.payload) == SEGMENT_SIZE
    assert second.seq == first.seq + SEGMENT_SIZE
    assert after_gap.seq == second.seq + 10 + 1000
    assert rst.seq == after_gap.seq + 1
    assert packets[0][IPv6].src == "fd00:7a9::1"


def test_events_for_a_connection_never_opened_make_no_packet() -> None:
    stream = io.BytesIO()
    writer = PcapFileWriter(stream)
    writer.write("local", DataReceived(ts=1.0, conn=5, direction="in", data=b"x"))
    writer.write("local", Gap(ts=1.0, conn=5, direction="in", length=3))
    writer.write("local", ConnectionClosed(ts=1.0, conn=5, reason="fin"))
    assert (writer.packets, len(stream.getvalue())) == (0, 24)  # the global header alone


def test_openings_a_pcap_cannot_show_and_impossible_times_are_no_crash(tmp_path: Path) -> None:
    # What a stranger's recording, opened and written out again, may hold.
    s = Script().hello()
    s.open(1, "198.18.0.1", 70_000)  # no such port
    s.open(2, "not an address", 40000)
    s.open(3, "198.18.0.1", 40000, server="fd00:7a9::2")  # IPv4 to IPv6
    s.open(4, "198.18.0.1", 40000)
    for conn in (1, 2, 3, 4):
        s.data(conn, "in", b"GET / HTTP/1.1\r\n\r\n")
    s.events += [
        DataReceived(ts=ts, conn=4, direction="out", data=b"x")
        for ts in (float("nan"), -1.0, 1e20, float("inf"))
    ]
    path = tmp_path / "odd.pcap"
    write(s, path)
    packets = rdpcap(str(path))
    assert len(packets) == 3 + 1 + 4  # connection 4's handshake, request, and four bytes
    assert [float(p.time) for p in packets[-4:]] == [0.0, 0.0, LATEST, LATEST]


UNSHOWABLE = [
    ("not an address", {"client": "not an address"}),
    ("IPv4 to IPv6", {"server": "fd00:7a9::2"}),
    ("no such port", {"client_port": 70_000}),
    ("a negative port", {"server_port": -1}),
]


@pytest.mark.parametrize("changes", [c for _, c in UNSHOWABLE], ids=[i for i, _ in UNSHOWABLE])
def test_an_opening_a_pcap_cannot_show_is_counted_with_its_data(changes: dict[str, Any]) -> None:
    opening: dict[str, Any] = {
        "ts": 1.0,
        "conn": 1,
        "client": "198.18.0.1",
        "client_port": 40000,
        "server": "198.18.0.2",
        "server_port": 8080,
    }
    stream = io.BytesIO()
    writer = PcapFileWriter(stream)
    writer.write("local", ConnectionOpened(**{**opening, **changes}))
    writer.write("local", DataReceived(ts=1.1, conn=1, direction="in", data=b"GET / HTTP/1.1\r\n"))
    writer.write("local", Gap(ts=1.2, conn=1, direction="out", length=100))
    writer.write("local", DataReceived(ts=1.3, conn=1, direction="out", data=b"tail"))
    writer.write("local", ConnectionClosed(ts=1.4, conn=1, reason="fin"))
    assert (writer.packets, len(stream.getvalue())) == (0, 24)
    counts = (writer.connections_left_out, writer.data_events_left_out, writer.bytes_left_out)
    assert counts == (1, 2, 20)
    assert writer.left_out() == (
        "1 connection and 20 bytes of data (2 events) it cannot show as TCP packets (an "
        "address or port no packet can carry, or a connection it never saw open)"
    )


def test_data_of_a_connection_never_opened_is_counted() -> None:
    writer = PcapFileWriter(io.BytesIO())
    writer.write_events(
        "local",
        [
            DataReceived(ts=1.0, conn=5, direction="in", data=b"x" * 1500),
            DataReceived(ts=1.0, conn=5, direction="in", data=b""),  # nothing to leave out
            Gap(ts=1.0, conn=5, direction="in", length=3),
            DataReceived(ts=1.0, conn=6, direction="out", data=b"y"),
            ConnectionClosed(ts=1.0, conn=5, reason="fin"),
        ],
    )
    # The same connection number from another agent is another connection.
    script = Script("other").open(5, "198.18.0.1", 40000).data(5, "in", b"z")
    writer.write_events(script.source, script.events)
    assert writer.packets == 3 + 1
    counts = (writer.connections_left_out, writer.data_events_left_out, writer.bytes_left_out)
    assert counts == (0, 2, 1501)
    assert writer.left_out().startswith("1,501 bytes of data (2 events) it cannot show")


def test_a_pcap_of_showable_connections_leaves_nothing_out(tmp_path: Path) -> None:
    script = shop_script()
    writer = PcapFileWriter(io.BytesIO())
    writer.write_events(script.source, script.events)
    assert writer.packets > 0
    counts = (writer.connections_left_out, writer.data_events_left_out, writer.bytes_left_out)
    assert (counts, writer.left_out()) == ((0, 0, 0), "")
    with Recording(tmp_path / "shop.pcap", RecordingHeader("0.1.0", "netns/shop", [])) as rec:
        rec.write(script.updates())
        assert rec.left_out() == ""


def test_a_pcap_recording_says_what_it_left_out_and_keeps_the_rest(tmp_path: Path) -> None:
    script = Script().hello()
    script.open(1, "198.18.0.1", 40000)
    script.exchange(1, request("GET", "/kept"), response(200, b"ok"))
    script.open(2, "198.18.0.1", 70_000)
    script.exchange(2, request("GET", "/left-out"), response(200, b"ok"))
    script.close(1).close(2)
    path = tmp_path / "stranger.pcap"
    header = RecordingHeader("0.1.0", "netns/shop", [8080])
    with Recording(path.with_suffix(".jsonl"), header) as recording:
        recording.write(script.updates())
        assert recording.left_out() == ""  # a JSONL recording keeps every event as it came
    with Recording(path, header) as recording:
        recording.write(script.updates())
        sentence = recording.left_out()
    lost = len(request("GET", "/left-out")) + len(response(200, b"ok"))
    assert sentence == (
        f"the pcap leaves out 1 connection and {lost} bytes of data (2 events) it cannot show "
        "as TCP packets (an address or port no packet can carry, or a connection it never "
        "saw open); record to .jsonl to keep them."
    )
    store = store_of(list(read_pcap(str(path), [8080])))
    (kept,) = store.connections.values()
    assert [(ex.request.target, ex.status) for ex in kept.exchanges] == [("/kept", 200)]


def test_the_file_is_valid_before_any_packet(tmp_path: Path) -> None:
    stream = io.BytesIO()
    PcapFileWriter(stream).flush()
    assert len(stream.getvalue()) == 24  # the pcap global header, nothing else
    path = tmp_path / "empty.pcap"
    path.write_bytes(stream.getvalue())
    assert list(rdpcap(str(path))) == []
    assert list(read_pcap(str(path), [80])) == []


def store_of(events: list[Any], source: str = "local") -> Store:
    store = Store()
    store.apply([AgentEvent(source, event) for event in events])
    return store


def summary(store: Store) -> list[Any]:
    return sorted(
        (
            conn.client,
            conn.client_port,
            conn.server,
            conn.server_port,
            conn.protocol,
            conn.bytes_in,
            conn.bytes_out,
            conn.gap_bytes,
            [
                (
                    ex.request.method,
                    ex.request.target,
                    ex.request.headers,
                    ex.request.body,
                    ex.status,
                    ex.response.body if ex.response else None,
                    ex.incomplete,
                )
                for ex in conn.exchanges
            ],
        )
        for conn in store.connections.values()
    )


def test_a_written_pcap_reads_back_into_the_same_store(tmp_path: Path) -> None:
    script = shop_script()
    path = tmp_path / "shop.pcap"
    write(script, path)
    events = list(read_pcap(str(path), [8080, 7000, 8443]))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert summary(store_of(events)) == summary(store_of(script.events))
    kinds = {type(e) for e in events}
    assert {ConnectionOpened, DataReceived, ConnectionClosed} <= kinds


def test_gaps_come_back_as_gaps_of_the_same_length(tmp_path: Path) -> None:
    s = Script().hello()
    s.open(1, "198.18.0.1", 40000)
    s.data(1, "in", request("GET", "/a")).gap(1, "in", 321).data(1, "in", request("GET", "/b"))
    s.data(1, "out", response(200, b"one")).close(1)
    path = tmp_path / "gap.pcap"
    write(s, path)
    events = list(read_pcap(str(path), [8080]))
    gaps = [e for e in events if isinstance(e, Gap)]
    assert [(g.direction, g.length) for g in gaps] == [("in", 321)]


def test_server_ports_are_guessed_from_syns(tmp_path: Path) -> None:
    path = tmp_path / "shop.pcap"
    write(shop_script(), path)
    assert guess_server_ports(str(path)) == [7000, 8080, 8443]


def test_without_syns_the_lower_port_of_each_flow_is_the_server(tmp_path: Path) -> None:
    s = Script().hello()
    s.open(1, "198.18.0.1", 40000, mid_stream=True)
    s.exchange(1, request("GET", "/late"), response(200, b"ok"))
    path = tmp_path / "late.pcap"
    write(s, path)
    assert guess_server_ports(str(path)) == [8080]
    store = store_of(list(read_pcap(str(path), [8080])))
    (conn,) = store.connections.values()
    assert conn.mid_stream
    assert [ex.request.target for ex in conn.exchanges] == ["/late"]


def test_other_link_types_and_pcapng_are_read(tmp_path: Path) -> None:
    source = tmp_path / "shop.pcap"
    write(shop_script(), source)
    expected = summary(store_of(list(read_pcap(str(source), [8080, 7000, 8443]))))
    packets = rdpcap(str(source))
    # Raw IP (what tcpdump writes for tun devices) and pcapng (what Wireshark saves).
    raw = tmp_path / "raw.pcap"
    writer = PcapWriter(str(raw), linktype=101)
    for packet in packets:
        ip = packet.payload
        ip.time = packet.time
        writer.write(bytes(ip))
    writer.close()
    ng = tmp_path / "shop.pcapng"
    from scapy.utils import PcapNgWriter

    ng_writer = PcapNgWriter(str(ng))
    for packet in packets:
        ng_writer.write(packet)
    ng_writer.close()
    for path in (raw, ng):
        assert summary(store_of(list(read_pcap(str(path), [8080, 7000, 8443])))) == expected


def test_link_layers() -> None:
    ethernet = b"\x00" * 12 + b"\x08\x00"
    vlan = b"\x00" * 12 + b"\x81\x00\x00\x05\x86\xdd"
    assert ip_offset(1, ethernet) == 14
    assert ip_offset(1, vlan) == 18
    assert ip_offset(1, b"\x00" * 12 + b"\x08\x06") is None  # ARP
    assert ip_offset(276, b"") == 20
    assert ip_offset(113, b"") == 16
    assert ip_offset(147, b"") is None


def test_a_file_that_is_not_a_capture_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "notes.pcap"
    path.write_text("hello, this is not a capture at all")
    with pytest.raises(UserError, match=r"is not a pcap or pcapng file"):
        list(read_pcap(str(path), [80]))


@needs_tshark
def test_tshark_finds_every_request_and_sees_the_gap(tmp_path: Path) -> None:
    script = shop_script()
    script.open(20, "198.18.0.1", 45000)
    script.data(20, "in", request("GET", "/before-loss")).gap(20, "out", 500)
    script.data(20, "in", request("GET", "/after-loss")).close(20)
    script.open(21, "fd00:7a9::1", 45001, server="fd00:7a9::2")
    script.exchange(
        21, request("GET", "/over-ipv6", host="[fd00:7a9::2]:8080"), response(200, b"six")
    ).close(21)
    path = tmp_path / "shop.pcap"
    write(script, path)

    def tshark(*args: str) -> list[str]:
        done = subprocess.run(
            ["tshark", "-r", str(path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.splitlines()

    uris = tshark("-Y", "http.request", "-T", "fields", "-e", "http.request.uri")
    sent = [
        e.data
        for e in script.events
        if isinstance(e, DataReceived) and e.direction == "in" and e.data[:4] in (b"GET ", b"POST")
    ]
    assert sorted(uris) == sorted(d.split(b" ")[1].decode() for d in sent)
    assert len(tshark("-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0")) == 11
    assert tshark("-Y", "ipv6 && http.request", "-T", "fields", "-e", "http.request.uri") == [
        "/over-ipv6"
    ]
    assert (
        tshark(
            "-Y",
            "tcp.checksum.status == 0 || ip.checksum.status == 0",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
        )
        == []
    )
    assert len(tshark("-Y", "tcp.flags.reset == 1")) == 1
    assert len(tshark("-Y", "tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment")) >= 1
    statuses = tshark("-Y", "http.response", "-T", "fields", "-e", "http.response.code")
    assert sorted(statuses) == sorted(["200"] * 13 + ["500", "404"])


def test_a_capture_cut_mid_packet_reads_up_to_its_last_whole_packet(tmp_path: Path) -> None:
    whole = tmp_path / "whole.pcap"
    write(shop_script(), whole)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole.read_bytes()[:-5])
    events = list(read_pcap(str(cut), [8080, 7000, 8443]))
    assert 0 < len(events) <= len(list(read_pcap(str(whole), [8080, 7000, 8443])))


def _cut_capture(path: Path, *, ip_length_zero: bool) -> None:
    """A connection whose middle data segment was captured cut short, the way ``tcpdump -s``
    leaves it (or, with ``ip_length_zero``, an offloaded super-packet whose IPv4 header says 0)."""
    client, server = "10.9.0.1", "10.9.0.2"

    def segment(from_client: bool, seq: int, ack: int, tcp_flags: str, payload: bytes) -> Any:
        src, dst, sport, dport = (
            (client, server, 40000, 80) if from_client else (server, client, 80, 40000)
        )
        return (
            Ether()
            / IP(src=src, dst=dst)
            / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=tcp_flags)
            / payload
        )

    first, lost, last = b"A" * 600, b"B" * 3000, b"C" * 400
    packets = [
        segment(True, 1000, 0, "S", b""),
        segment(False, 5000, 1001, "SA", b""),
        segment(True, 1001, 5001, "A", b""),
        segment(True, 1001, 5001, "PA", first),
        segment(True, 1601, 5001, "PA", lost),
        segment(True, 4601, 5001, "PA", last),
        segment(True, 5001, 5001, "FA", b""),
        segment(False, 5001, 5002, "FA", b""),
    ]
    writer = PcapWriter(str(path), linktype=1, snaplen=1514)
    writer.write_header(None)
    for number, packet in enumerate(packets):
        data = bytes(packet)
        if packet[TCP].payload and bytes(packet[TCP].payload) == lost:
            if ip_length_zero:
                data = data[:16] + b"\x00\x00" + data[18:]
            writer.write_packet(data[:1514], sec=1_700_000_000, usec=number, wirelen=len(data))
        else:
            writer.write_packet(data, sec=1_700_000_000, usec=number)
    writer.close()


@pytest.mark.parametrize("ip_length_zero", [False, True], ids=["snaplen", "super-packet"])
def test_a_packet_captured_short_is_a_gap_never_a_shorter_segment(
    tmp_path: Path, ip_length_zero: bool
) -> None:
    path = tmp_path / "cut.pcap"
    _cut_capture(path, ip_length_zero=ip_length_zero)
    events = [e for e in read_pcap(str(path), [80]) if isinstance(e, (DataReceived, Gap))]
    assert [(type(e).__name__, e.direction) for e in events] == [
        ("DataReceived", "in"),
        ("Gap", "in"),
        ("DataReceived", "in"),
    ]
    first, gap, last = events
    assert isinstance(first, DataReceived)
    assert isinstance(last, DataReceived)
    assert isinstance(gap, Gap)
    assert (first.data, gap.length, last.data) == (b"A" * 600, 3000, b"C" * 400)
