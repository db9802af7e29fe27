"""The mirrord-format text formatter and the JSON-lines form of events."""

from __future__ import annotations

import io

import pytest

from agent.events import (
    AnyEvent,
    ConnectionClosed,
    ConnectionOpened,
    DataReceived,
    Direction,
    EventsLost,
    Gap,
    Hello,
    Stats,
)
from tui.model.store import Store
from tui.model.updates import AgentEvent, SourceStatus
from tui.output.exchange_text import ExchangeTextFormatter, ExchangeWriter
from tui.output.jsonl import JsonLinesWriter, decode_line, encode_line
from tui.output.text import TextFormatter, TextWriter, address, data_block

pytestmark = pytest.mark.timeout(10)

HEALTH = (
    b"GET /health HTTP/1.1\r\nHost: 10.96.1.207\r\nUser-Agent: GoogleHC/1.0\r\n"
    b"Connection: Keep-alive\r\n\r\n"
)


def opened(
    conn: int = 0,
    client: str = "35.191.238.165",
    server: str = "10.96.1.207",
    mid_stream: bool = False,
) -> ConnectionOpened:
    return ConnectionOpened(
        ts=1.0,
        conn=conn,
        client=client,
        client_port=55534,
        server=server,
        server_port=80,
        mid_stream=mid_stream,
    )


def test_the_mirrord_example_line_for_line() -> None:
    formatter = TextFormatter()
    text = "".join(
        formatter.format("local", event)
        for event in (
            opened(),
            DataReceived(ts=1.0, conn=0, direction="in", data=HEALTH),
            ConnectionClosed(ts=1.0, conn=0, reason="fin"),
        )
    )
    assert len(HEALTH) == 93
    assert text.splitlines() == [
        "## New connection established: Connection ID 0 from 35.191.238.165:55534 to "
        "10.96.1.207:80",
        "## Connection ID 0: 93 bytes",
        "Data: GET /health HTTP/1.1",
        "Host: 10.96.1.207",
        "User-Agent: GoogleHC/1.0",
        "Connection: Keep-alive",
        "",
        "## Connection ID 0 closed",
        "",
    ]
    # The bytes are printed as they were received, CRLF included.
    assert "Data: GET /health HTTP/1.1\r\nHost" in text


@pytest.mark.parametrize(
    ("data", "block"),
    [
        (b"ping", "Data: ping\n\n"),
        (b"ping\n", "Data: ping\n\n"),
        (b"ping\r\n", "Data: ping\r\n\n"),
        (b"a\r\n\r\n", "Data: a\r\n\r\n"),
        (b"a\n\n", "Data: a\n\n"),
        ("grüße".encode(), "Data: grüße\n\n"),
        (b"\x16\x03\x01\x00\xff", "Data (hex): 16 03 01 00 ff\n\n"),
        (b"caf\xe9", "Data (hex): 63 61 66 e9\n\n"),
    ],
)
def test_data_blocks_end_in_exactly_one_blank_line(data: bytes, block: str) -> None:
    assert data_block(data) == block


def test_ipv6_addresses_are_bracketed() -> None:
    assert address("fd00:7a9:1::2", 8080) == "[fd00:7a9:1::2]:8080"
    assert address("198.18.0.2", 80) == "198.18.0.2:80"
    line = TextFormatter().format("local", opened(client="fd00::1", server="fd00::2"))
    assert line == (
        "## New connection established: Connection ID 0 from [fd00::1]:55534 to [fd00::2]:80\n"
    )


def test_responses_are_shown_only_when_asked() -> None:
    no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
    response = DataReceived(ts=1.0, conn=3, direction="out", data=no_content)
    assert TextFormatter().format("local", response) == ""
    assert TextFormatter(responses=True).format("local", response) == (
        "## Connection ID 3: 27 bytes (response)\nData: HTTP/1.1 204 No Content\r\n\r\n"
    )


def test_gaps_and_lost_events_are_printed_where_they_happen() -> None:
    formatter = TextFormatter()
    assert formatter.format("local", Gap(ts=1.0, conn=2, direction="in", length=1448)) == (
        "## Connection ID 2: 1448 bytes missing\n"
    )
    out_gap = Gap(ts=1.0, conn=2, direction="out", length=10)
    assert formatter.format("local", out_gap) == ""
    assert TextFormatter(responses=True).format("local", out_gap) == (
        "## Connection ID 2: 10 bytes missing (response)\n"
    )
    lost = EventsLost(ts=1.0, first_seq=5, count=120, reason="slow-client")
    assert formatter.format("local", lost) == "## 120 events lost (podtap read too slowly)\n"


def test_close_reasons_and_mid_stream_joins_are_said() -> None:
    formatter = TextFormatter()
    assert formatter.format("local", ConnectionClosed(ts=1.0, conn=1, reason="rst")) == (
        "## Connection ID 1 closed (reset)\n\n"
    )
    assert formatter.format("local", opened(mid_stream=True)).endswith(
        "to 10.96.1.207:80 (already open when capture started)\n"
    )


def test_several_pods_are_told_apart() -> None:
    formatter = TextFormatter(show_source=True)
    text = formatter.format(
        "shop/web-7d9f-abcde", DataReceived(ts=1.0, conn=0, direction="in", data=b"hi")
    )
    assert text == "## [shop/web-7d9f-abcde] Connection ID 0: 2 bytes\nData: hi\n\n"


def test_hello_stats_and_statuses_print_nothing() -> None:
    hello = Hello(
        ts=1.0,
        protocol=1,
        version="x",
        agent_id="a",
        target="host",
        ports=[80],
        interfaces=["lo"],
        oldest_seq=1,
        next_seq=1,
    )
    stats = Stats(
        ts=1.0,
        packets=1,
        bytes=1,
        kernel_packets=1,
        kernel_drops=0,
        open_connections=0,
        gaps=0,
        gap_bytes=0,
    )
    stream = io.BytesIO()
    TextWriter(stream, TextFormatter()).write(
        [
            AgentEvent("local", hello),
            AgentEvent("local", stats),
            SourceStatus("local", "live"),
        ]
    )
    assert stream.getvalue() == b""


def test_the_writer_keeps_undecodable_bytes_out_of_the_text() -> None:
    stream = io.BytesIO()
    TextWriter(stream, TextFormatter()).write(
        [
            AgentEvent("local", opened()),
            AgentEvent("local", DataReceived(ts=1.0, conn=0, direction="in", data=b"\xff\xfe")),
        ]
    )
    assert stream.getvalue().endswith(b"## Connection ID 0: 2 bytes\nData (hex): ff fe\n\n")


def test_json_lines_round_trip_with_their_source() -> None:
    event = DataReceived(seq=9, ts=2.5, conn=4, direction="out", data=b"\x00binary\xff")
    line = encode_line("ns/pod-1", event)
    assert line.endswith(b',"source":"ns/pod-1"}\n')
    assert line.count(b"\n") == 1
    assert decode_line(line) == ("ns/pod-1", event)
    stream = io.BytesIO()
    JsonLinesWriter(stream).write([AgentEvent("local", event), SourceStatus("local", "live")])
    assert decode_line(stream.getvalue()) == ("local", event)


def test_decoded_exchanges_print_once_each_as_their_parts_arrive() -> None:
    stream = io.BytesIO()
    writer = ExchangeWriter(stream, ExchangeTextFormatter(), Store())

    def event(e: AnyEvent) -> AgentEvent:
        return AgentEvent("local", e)

    request = b"GET /users?id=7 HTTP/1.1\r\nHost: shop\r\nX-User-Id: alice\r\n\r\n"
    writer.write(
        [
            event(opened(conn=3, client="fd00::1")),
            event(DataReceived(ts=10.0, conn=3, direction="in", data=request[:20])),
        ]
    )
    assert stream.getvalue() == b""  # the request line alone: headers not decoded yet
    writer.write([event(DataReceived(ts=10.0, conn=3, direction="in", data=request[20:]))])
    not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno"
    writer.write([event(DataReceived(ts=10.0123, conn=3, direction="out", data=not_found))])
    writer.write([event(DataReceived(ts=10.02, conn=3, direction="out", data=b"!"))])
    assert stream.getvalue().decode().splitlines() == [
        "## Request [3:0] from [fd00::1]:55534 to 10.96.1.207:80",
        "GET /users?id=7 HTTP/1.1",
        "Host: shop",
        "X-User-Id: alice",
        "",
        "## Response [3:0] 404 Not Found (12.3 ms)",
        "Content-Length: 3",
        "",
    ]


def test_decoded_exchanges_name_their_pod_when_several_are_tapped() -> None:
    stream = io.BytesIO()
    writer = ExchangeWriter(stream, ExchangeTextFormatter(show_source=True), Store())
    writer.write(
        [
            AgentEvent("shop/web-1", opened(conn=0)),
            AgentEvent(
                "shop/web-1",
                DataReceived(
                    ts=1.0, conn=0, direction="in", data=b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
                ),
            ),
        ]
    )
    assert stream.getvalue().startswith(b"## [shop/web-1] Request [0:0] from ")


def test_a_character_split_between_chunks_stays_text() -> None:
    body = '{"name": "Zoë → café"}'.encode()
    cut = body.index("ë".encode()) + 1  # between the two bytes of ë
    formatter = TextFormatter(responses=True)

    def chunk(data: bytes, direction: Direction = "out") -> str:
        event = DataReceived(ts=1.0, conn=0, direction=direction, data=data)
        return formatter.format("local", event)

    first, second = chunk(body[:cut]), chunk(body[cut:])
    assert first == f'## Connection ID 0: {cut} bytes (response)\nData: {{"name": "Zo\n\n'
    assert second == (
        f'## Connection ID 0: {len(body) - cut} bytes (response)\nData: ë → café"}}\n\n'
    )
    # The other direction, and bytes that are not text at all, are not affected.
    assert chunk(b"ok", "in").endswith("Data: ok\n\n")
    assert chunk(b"\xff\x00") == "## Connection ID 0: 2 bytes (response)\nData (hex): ff 00\n\n"


def test_a_gap_drops_the_half_character_before_it() -> None:
    formatter = TextFormatter()
    formatter.format("local", DataReceived(ts=1.0, conn=0, direction="in", data=b"a\xc3"))
    formatter.format("local", Gap(ts=1.0, conn=0, direction="in", length=5))
    after = formatter.format("local", DataReceived(ts=1.0, conn=0, direction="in", data=b"b"))
    assert after == "## Connection ID 0: 1 bytes\nData: b\n\n"
