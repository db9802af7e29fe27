"""``dump --http``: 1xx responses as blocks of their own, and trailers after the headers."""

from __future__ import annotations

import io

import hpack
import pytest
from hyperframe.frame import DataFrame, HeadersFrame, SettingsFrame

from agent.events import ConnectionOpened, DataReceived
from tui.model.http2_frames import PREFACE
from tui.model.store import Store
from tui.model.updates import AgentEvent
from tui.output.exchange_text import ExchangeTextFormatter, ExchangeWriter

pytestmark = pytest.mark.timeout(10)

UPLOAD = b"PUT /upload HTTP/1.1\r\nHost: files\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"


class Dump:
    def __init__(self) -> None:
        self.stream = io.BytesIO()
        self.writer = ExchangeWriter(self.stream, ExchangeTextFormatter(), Store())
        self.writer.write(
            [
                AgentEvent(
                    "local",
                    ConnectionOpened(
                        ts=1.0,
                        conn=2,
                        client="10.0.0.1",
                        client_port=40000,
                        server="10.0.0.2",
                        server_port=80,
                    ),
                )
            ]
        )

    def send(self, direction: str, data: bytes, ts: float) -> None:
        event = DataReceived(ts=ts, conn=2, direction=direction, data=data)  # type: ignore[arg-type]
        self.writer.write([AgentEvent("local", event)])

    @property
    def lines(self) -> list[str]:
        return self.stream.getvalue().decode().splitlines()


def test_a_100_continue_is_its_own_block_before_the_final_response() -> None:
    dump = Dump()
    dump.send("in", UPLOAD, 1.0)
    dump.send("out", b"HTTP/1.1 100 Continue\r\n\r\n", 1.001)
    assert dump.lines[-2:] == ["## Response [2:0] 100 Continue", ""]
    dump.send("in", b"hello", 1.002)
    dump.send("out", b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 1.0045)
    assert dump.lines[6:] == [
        "## Response [2:0] 100 Continue",
        "",
        "## Response [2:0] 201 Created (2.5 ms)",
        "Content-Length: 0",
        "",
    ]


def test_announced_trailers_come_with_the_response_once_it_is_complete() -> None:
    dump = Dump()
    dump.send("in", b"GET /sum HTTP/1.1\r\nHost: files\r\n\r\n", 1.0)
    dump.send(
        "out",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n",
        1.01,
    )
    assert "## Response" not in dump.stream.getvalue().decode()
    dump.send("out", b"0\r\nX-Sum: 99\r\n\r\n", 1.02)
    assert dump.lines[4:] == [
        "## Response [2:0] 200 OK (10.0 ms)",
        "Transfer-Encoding: chunked",
        "Trailer: X-Sum",
        "Trailers:",
        "X-Sum: 99",
        "",
    ]


def test_unannounced_trailers_follow_in_a_block_of_their_own() -> None:
    dump = Dump()
    dump.send("in", b"GET /sum HTTP/1.1\r\nHost: files\r\n\r\n", 1.0)
    dump.send("out", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 1.01)
    dump.send("out", b"0\r\nX-Sum: 99\r\nX-Checked: yes\r\n\r\n", 1.02)
    assert dump.lines[4:] == [
        "## Response [2:0] 200 OK (10.0 ms)",
        "Transfer-Encoding: chunked",
        "",
        "## Response [2:0] trailers",
        "Trailers:",
        "X-Sum: 99",
        "X-Checked: yes",
        "",
    ]


CHUNKED_UPLOAD = b"POST /sum HTTP/1.1\r\nHost: files\r\nTransfer-Encoding: chunked\r\n"


def test_announced_request_trailers_come_with_the_request_once_it_is_complete() -> None:
    dump = Dump()
    dump.send("in", CHUNKED_UPLOAD + b"Trailer: X-Sum\r\n\r\n5\r\nhello\r\n", 1.0)
    assert "## Request" not in dump.stream.getvalue().decode()
    dump.send("in", b"0\r\nX-Sum: 99\r\n\r\n", 1.01)
    dump.send("out", b"HTTP/1.1 204 No Content\r\n\r\n", 1.02)
    assert dump.lines[:8] == [
        "## Request [2:0] from 10.0.0.1:40000 to 10.0.0.2:80",
        "POST /sum HTTP/1.1",
        "Host: files",
        "Transfer-Encoding: chunked",
        "Trailer: X-Sum",
        "Trailers:",
        "X-Sum: 99",
        "",
    ]
    assert dump.lines[8] == "## Response [2:0] 204 No Content (10.0 ms)"


def test_unannounced_request_trailers_follow_the_request_in_a_block_of_their_own() -> None:
    dump = Dump()
    dump.send("in", CHUNKED_UPLOAD + b"\r\n5\r\nhello\r\n", 1.0)
    dump.send("in", b"0\r\nX-Sum: 99\r\n\r\n", 1.01)
    assert dump.lines[4:] == ["", "## Request [2:0] trailers", "Trailers:", "X-Sum: 99", ""]


def test_http2_request_trailers_are_printed_after_the_request() -> None:
    client, server = hpack.Encoder(), hpack.Encoder()
    request = [
        (":method", "POST"),
        (":path", "/upload"),
        (":authority", "files"),
        (":scheme", "http"),
    ]
    opening = [SettingsFrame(0), HeadersFrame(1, client.encode(request), flags=["END_HEADERS"])]
    trailers = HeadersFrame(
        1, client.encode([("x-checksum", "5d41402a")]), flags=["END_HEADERS", "END_STREAM"]
    )
    answer = HeadersFrame(
        1, server.encode([(":status", "200")]), flags=["END_HEADERS", "END_STREAM"]
    )
    dump = Dump()
    dump.send("in", PREFACE + b"".join(frame.serialize() for frame in opening), 1.0)
    dump.send("in", DataFrame(1, b"hello").serialize() + trailers.serialize(), 1.01)
    dump.send("out", SettingsFrame(0).serialize() + answer.serialize(), 1.02)
    assert dump.lines[:4] == [
        "## Request [2:0] stream 1 from 10.0.0.1:40000 to 10.0.0.2:80",
        "POST /upload HTTP/2",
        "",
        "## Request [2:0] trailers",
    ]
    assert dump.lines[4:7] == ["Trailers:", "x-checksum: 5d41402a", ""]
