"""HTTP/2 and gRPC decoding: podtap's decoder against hyperframe + hpack alone, on the same bytes.

    .venv/bin/python bench/bench_h2.py [--streams 10000] [--grpc-messages 50000] [--runs 5]

The traffic is made by the real encoders (hyperframe frames, an hpack Encoder per direction):
connections of 100 streams, opened 10 at a time and answered interleaved (a JSON body of 200 to
3,000 bytes in DATA frames of up to 1,000 bytes), the bytes of each direction cut into 1,448-byte
segments as TCP carries them, both directions interleaved in capture order.

Measured in CPU time, contenders interleaved round by round, the median of --runs:
* podtap: tui.model.http2.Http2Decoder per connection (exchanges, bodies, stream table);
* hyperframe + hpack alone: the least a user of the two libraries must do to get the same
  frames and header lists out of both directions (buffer, cut frames, parse them, join
  CONTINUATIONs, decode every header block), keeping nothing;
* gRPC: server-streaming calls of 200 small protobuf messages each, in messages per second;
* memory per open connection: tracemalloc over 2,000 connections that each sent the preface,
  SETTINGS and one request still waiting for its answer.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tui.model.flows import Connection, Exchange
from tui.model.http2 import Http2Decoder
from tui.model.http2_frames import PREFACE
from tui.model.http2_headers import Http2HeaderCache

SEGMENT = 1448
PER_CONNECTION = 100
Direction = Literal["in", "out"]
Event = tuple[int, Direction, bytes]


class Sink:
    def exchange_started(self, exchange: Exchange) -> None:
        pass

    def exchange_changed(self, exchange: Exchange) -> None:
        pass


def _segments(conn: int, direction: Direction, data: bytes) -> list[Event]:
    return [(conn, direction, data[i : i + SEGMENT]) for i in range(0, len(data), SEGMENT)]


def _request_headers(rng: random.Random, n: int) -> list[tuple[str, str]]:
    return [
        (":method", "GET" if n % 4 else "POST"),
        (":scheme", "http"),
        (":authority", "shop.internal:8080"),
        (":path", f"/api/items/{rng.randrange(10_000)}?page={n % 7}"),
        ("user-agent", "podtap-bench/1.0"),
        ("accept", "application/json"),
        ("x-user-id", f"user-{n % 40}"),
        ("x-request-id", f"{rng.getrandbits(64):016x}"),
    ]


def build_http2(streams: int, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    events: list[Event] = []
    for conn in range(max(1, streams // PER_CONNECTION)):
        client, server = hpack.Encoder(), hpack.Encoder()
        events += _segments(conn, "in", PREFACE + SettingsFrame(0).serialize())
        events += _segments(conn, "out", SettingsFrame(0).serialize())
        for batch in range(0, PER_CONNECTION, 10):
            ids = [2 * (batch + k) + 1 for k in range(10)]
            asked = b"".join(
                HeadersFrame(
                    sid,
                    client.encode(_request_headers(rng, sid)),
                    flags=["END_HEADERS", "END_STREAM"],
                ).serialize()
                for sid in ids
            )
            events += _segments(conn, "in", asked)
            events += _segments(conn, "out", _answers(rng, server, ids))
    return events


def _answers(rng: random.Random, server: hpack.Encoder, ids: list[int]) -> bytes:
    heads = [
        HeadersFrame(
            sid,
            server.encode(
                [(":status", "200"), ("content-type", "application/json"), ("server", "shop")]
            ),
            flags=["END_HEADERS"],
        ).serialize()
        for sid in ids
    ]
    frames = heads[:]
    bodies = {sid: rng.randbytes(rng.randrange(200, 3000)) for sid in ids}
    while bodies:
        for sid in list(bodies):
            body = bodies[sid]
            piece, rest = body[:1000], body[1000:]
            flags = [] if rest else ["END_STREAM"]
            frames.append(DataFrame(sid, piece, flags=flags).serialize())
            if rest:
                bodies[sid] = rest
            else:
                del bodies[sid]
    frames.append(WindowUpdateFrame(0, window_increment=65535).serialize())
    return b"".join(frames)


def build_grpc(messages: int) -> list[Event]:
    client, server = hpack.Encoder(), hpack.Encoder()
    events = _segments(0, "in", PREFACE + SettingsFrame(0).serialize())
    per_call = 200
    for call in range(max(1, messages // per_call)):
        sid = 2 * call + 1
        request = client.encode(
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/podtap.demo.Greeter/Count"),
                (":authority", "greeter:50051"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ]
        )
        message = b"\x00\x00\x00\x00\x05\x0a\x03abc"
        events += _segments(
            0,
            "in",
            HeadersFrame(sid, request, flags=["END_HEADERS"]).serialize()
            + DataFrame(sid, message, flags=["END_STREAM"]).serialize(),
        )
        head = server.encode([(":status", "200"), ("content-type", "application/grpc")])
        out = HeadersFrame(sid, head, flags=["END_HEADERS"]).serialize()
        for n in range(per_call):
            value = n * 1000 + 1
            payload = b"\x08" + _varint(value)
            out += DataFrame(sid, b"\x00" + len(payload).to_bytes(4, "big") + payload).serialize()
        tail = server.encode([("grpc-status", "0"), ("grpc-message", "")])
        out += HeadersFrame(sid, tail, flags=["END_HEADERS", "END_STREAM"]).serialize()
        events += _segments(0, "out", out)
    return events


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _connection(conn: int) -> Connection:
    return Connection(
        key=("bench", conn),
        source="bench",
        conn=conn,
        client="10.0.0.1",
        client_port=40000 + conn % 20000,
        server="10.0.0.2",
        server_port=8080,
        opened=0.0,
    )


def run_podtap(events: list[Event]) -> int:
    decoders: dict[int, Http2Decoder] = {}
    connections: list[Connection] = []
    sink = Sink()
    cache = Http2HeaderCache()  # one per store, as the store keeps it
    for conn, direction, data in events:
        decoder = decoders.get(conn)
        if decoder is None:
            connection = _connection(conn)
            connections.append(connection)
            decoder = decoders[conn] = Http2Decoder(connection, cache=cache)
        decoder.feed(direction, data, 1.0, sink)
    return sum(len(c.exchanges) for c in connections)


def run_grpc_messages(events: list[Event]) -> int:
    connection = _connection(0)
    decoder = Http2Decoder(connection)
    sink = Sink()
    for _, direction, data in events:
        decoder.feed(direction, data, 1.0, sink)
    return sum(len(ex.messages) for ex in connection.exchanges)


def run_libraries(events: list[Event]) -> int:
    """hyperframe + hpack alone: frames cut and parsed, header blocks decoded, nothing kept."""
    state: dict[tuple[int, Direction], list[object]] = {}
    blocks = 0
    for conn, direction, data in events:
        side = state.get((conn, direction))
        if side is None:
            side = state[(conn, direction)] = [bytearray(), hpack.Decoder(), [], direction == "in"]
        buf = side[0]
        assert isinstance(buf, bytearray)
        buf += data
        if side[3]:
            if len(buf) < len(PREFACE):
                continue
            del buf[: len(PREFACE)]
            side[3] = False
        at = 0
        view = memoryview(buf)
        while len(buf) - at >= 9:
            frame, length = Frame.parse_frame_header(view[at : at + 9])
            if len(buf) - at - 9 < length:
                break
            frame.parse_body(view[at + 9 : at + 9 + length])
            at += 9 + length
            if isinstance(frame, (HeadersFrame, ContinuationFrame)):
                fragments = side[2]
                assert isinstance(fragments, list)
                fragments.append(frame.data)
                if "END_HEADERS" in frame.flags:
                    decoder = side[1]
                    assert isinstance(decoder, hpack.Decoder)
                    decoder.decode(b"".join(fragments), raw=True)
                    fragments.clear()
                    blocks += 1
        view.release()
        del buf[:at]
    return blocks


def cpu(run: Callable[[list[Event]], int], events: list[Event]) -> tuple[float, int]:
    gc.collect()
    start = time.process_time()
    count = run(events)
    return time.process_time() - start, count


def memory_per_connection(count: int = 2000) -> float:
    client, server = hpack.Encoder(), hpack.Encoder()
    rng = random.Random(3)
    opening = PREFACE + SettingsFrame(0).serialize()
    request = HeadersFrame(
        1, client.encode(_request_headers(rng, 1)), flags=["END_HEADERS", "END_STREAM"]
    ).serialize()
    settings = SettingsFrame(0).serialize()
    del server
    sink = Sink()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = []
    cache = Http2HeaderCache()
    for conn in range(count):
        decoder = Http2Decoder(_connection(conn), cache=cache)
        decoder.feed("in", opening + request, 1.0, sink)
        decoder.feed("out", settings, 1.0, sink)
        kept.append(decoder)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--grpc-messages", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    http2 = build_http2(args.streams)
    grpc = build_grpc(args.grpc_messages)
    size = sum(len(data) for _, _, data in http2)
    print(f"HTTP/2: {args.streams} streams, {size / 1e6:.1f} MB in {len(http2)} segments")
    times: dict[str, list[float]] = {"podtap": [], "libraries": [], "grpc": []}
    counts: dict[str, int] = {}
    for _ in range(args.runs):
        for name, run, events in (
            ("podtap", run_podtap, http2),
            ("libraries", run_libraries, http2),
            ("grpc", run_grpc_messages, grpc),
        ):
            seconds, counts[name] = cpu(run, events)
            times[name].append(seconds)
    podtap = statistics.median(times["podtap"])
    libraries = statistics.median(times["libraries"])
    grpc_time = statistics.median(times["grpc"])
    print(f"  podtap decoder          {counts['podtap'] / podtap:>10,.0f} streams/s")
    print(f"  hyperframe + hpack      {counts['libraries'] / libraries:>10,.0f} header blocks/s")
    print(f"    (that is {counts['libraries'] / 2 / libraries:,.0f} streams/s: 2 blocks each)")
    print(f"  ratio podtap / libraries {libraries / podtap:.2f} (goal >= 0.70)")
    print(f"gRPC: {counts['grpc'] / grpc_time:,.0f} messages/s")
    print(f"memory per open HTTP/2 connection: {memory_per_connection() / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
