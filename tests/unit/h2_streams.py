"""Recorded HTTP/2 and gRPC conversations (see h2_recorder.py) and a way to replay them."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

from tests.unit.http_streams import Collected
from tui.model.flows import Connection, Exchange
from tui.model.http2 import Http2Decoder

Direction = Literal["in", "out"]
Chunks = list[tuple[Direction, bytes]]
Splitter = Callable[[int, bytes], Sequence[bytes]]
RECORDINGS = Path(__file__).parent / "h2_recordings"
NAMES = ("nghttp-concurrent", "nghttp-post", "curl-prior-knowledge", "grpc-calls", "grpc-gzip")
"""Recordings that start at the connection's start (grpc-joined-late does not)."""


@cache
def recording(name: str) -> tuple[tuple[Direction, bytes], ...]:
    chunks = []
    for line in (RECORDINGS / f"{name}.jsonl").read_text().splitlines():
        direction, data = json.loads(line)
        chunks.append((direction, base64.b64decode(data)))
    return tuple(chunks)


def new_connection() -> Connection:
    return Connection(
        key=("local", 3),
        source="local",
        conn=3,
        client="10.0.0.1",
        client_port=40000,
        server="10.0.0.2",
        server_port=8080,
        opened=0.0,
    )


def replay(
    chunks: Sequence[tuple[Direction, bytes]],
    split: Splitter | None = None,
    joined_late: bool = False,
    body_cap: int = 65_536,
    close: bool = True,
) -> tuple[Connection, Http2Decoder, Collected]:
    """Feeds the chunks; chunk i carries time 1 + i. ``split`` cuts a chunk into pieces."""
    conn = new_connection()
    decoder = Http2Decoder(conn, body_cap=body_cap, joined_late=joined_late)
    sink = Collected()
    for index, (direction, data) in enumerate(chunks):
        pieces = [data] if split is None else split(index, data)
        for piece in pieces:
            decoder.feed(direction, piece, 1.0 + index, sink)
    if close:
        decoder.close(1.0 + len(chunks), sink)
    return conn, decoder, sink


def exchange_summary(ex: Exchange) -> dict[str, Any]:
    request, response = ex.request, ex.response
    return {
        "stream": ex.stream_id,
        "index": ex.index,
        "request": [
            request.method,
            request.target,
            request.path,
            request.host,
            request.headers,
            request.trailers,
            request.body,
            request.body_length,
            request.complete,
        ],
        "response": None
        if response is None
        else [
            response.status,
            response.reason,
            response.headers,
            response.trailers,
            response.body,
            response.body_length,
            response.complete,
        ],
        "times": [ex.started, ex.request_finished, ex.response_started, ex.finished],
        "messages": [(m.direction, m.time, m.data, m.length, m.note) for m in ex.messages],
        "notes": ex.notes,
        "incomplete": ex.incomplete,
        "error": ex.error,
    }


def summary(conn: Connection) -> dict[str, Any]:
    return {
        "protocol": conn.protocol,
        "errors": conn.errors,
        "exchanges": [exchange_summary(ex) for ex in conn.exchanges],
    }
