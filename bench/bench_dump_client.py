"""CPU per event of ``podtap dump``'s client path, on a flood's batches, without the network.

    .venv/bin/python bench/bench_dump_client.py [--events 200000] [--runs 7]

The input is what an agent sends for an HTTP flood: msgpack batches of 1,000 events (the
agent's cap), DataReceived of 116 to 151 bytes on 64 keep-alive connections, requests and
responses in turn, a Stats now and then, after a Hello. Each message goes the way it goes in
``podtap dump``: decoded (agent.wire.decode_batch), admitted by the resume cursor, wrapped as
updates, seen by the status reporter (loss accounting), then written by the writer of the
format to a stream that keeps nothing (no system calls), flushed per batch. Rows:

* jsonl: ``--format jsonl`` (and ``podtap record FILE.jsonl``'s writer);
* text: the default text (requests only, as without ``--responses``);
* floor: msgspec decoding each batch and encoding its events as JSON lines in one call, with
  nothing else: what any client in Python must spend at least.

CPU of this process (process_time), in microseconds per event: the median of --runs, each run
a pass over every batch, the rows interleaved run by run; then each row as a multiple of the
floor measured in the same runs.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec

from agent.events import PROTOCOL_VERSION, AnyEvent, DataReceived, Hello, Stats
from agent.wire import decode_batch, encode_batch
from tui.commands.live_capture import StatusReporter
from tui.model.updates import AgentEvent, Update
from tui.output.jsonl import JsonLinesWriter, RecordingHeader
from tui.output.text import TextFormatter, TextWriter
from tui.sources.stream import ResumeCursor

CONNECTIONS = 64
BATCH_EVENTS = 1000
START = 1_764_612_000.0


def flood_messages(events: int, seed: int = 7) -> list[bytes]:
    """The websocket messages an agent sends for ``events`` events of a flood."""
    rng = random.Random(seed)
    hello = Hello(
        ts=START,
        protocol=PROTOCOL_VERSION,
        version="bench",
        agent_id="a1",
        target="netns/bench",
        ports=[8080],
        interfaces=["veth0"],
        oldest_seq=1,
        next_seq=1,
    )
    messages = [encode_batch([hello])]
    batch: list[AnyEvent] = []
    for seq in range(1, events + 1):
        conn = (seq // 2) % CONNECTIONS
        ts = START + seq * 1e-6
        if seq % 50_000 == 0:
            batch.append(
                Stats(
                    seq=seq,
                    ts=ts,
                    packets=seq,
                    bytes=seq * 150,
                    kernel_packets=seq,
                    kernel_drops=0,
                    open_connections=CONNECTIONS,
                    gaps=0,
                    gap_bytes=0,
                )
            )
        elif seq % 2:
            path = "/api/items/" + str(rng.randrange(10**6))
            request = (
                f"GET {path} HTTP/1.1\r\nHost: 10.200.0.2:8080\r\n"
                f"User-Agent: wrk\r\nAccept: */*\r\n"
                f"X-Request-Id: {rng.getrandbits(64):016x}\r\n\r\n"
            ).encode()
            batch.append(DataReceived(seq=seq, ts=ts, conn=conn, direction="in", data=request))
        else:
            body = b"ok\n" * rng.randrange(1, 10)
            response = (
                b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\n"
                b"Date: Tue, 01 Dec 2026 18:00:00 GMT\r\nContent-Type: text/plain\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            batch.append(DataReceived(seq=seq, ts=ts, conn=conn, direction="out", data=response))
        if len(batch) == BATCH_EVENTS:
            messages.append(encode_batch(batch))
            batch = []
    if batch:
        messages.append(encode_batch(batch))
    return messages


class Discard(io.RawIOBase):
    """A binary stream that keeps nothing, as a fast /dev/null without system calls."""

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        return len(data)  # type: ignore[arg-type]


def client_path(make_writer: Callable[[], Callable[[list[Update]], None]]) -> Callable[..., None]:
    """One pass of dump's client over the messages, with the writer ``make_writer`` makes."""

    def run(messages: list[bytes]) -> None:
        cursor = ResumeCursor()
        reporter = StatusReporter(io.StringIO())
        write = make_writer()
        for message in messages:
            events = decode_batch(message)
            first = events[0]
            if isinstance(first, Hello):
                cursor.greet(first)
            batch: list[Update] = [AgentEvent("local", event) for event in cursor.admit(events)]
            reporter.report(batch)
            write(batch)

    return run


def jsonl_writer() -> Callable[[list[Update]], None]:
    stream = io.BufferedWriter(Discard())
    return JsonLinesWriter(stream, RecordingHeader(podtap="bench")).write


def text_writer() -> Callable[[list[Update]], None]:
    stream = io.BufferedWriter(Discard())
    return TextWriter(stream, TextFormatter()).write


def floor(messages: list[bytes]) -> None:
    decoder = msgspec.msgpack.Decoder(list[AnyEvent])
    encoder = msgspec.json.Encoder()
    stream = io.BufferedWriter(Discard())
    for message in messages:
        stream.write(encoder.encode_lines(decoder.decode(message)))
        stream.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    messages = flood_messages(args.events)
    events = sum(len(decode_batch(message)) for message in messages)
    rows: dict[str, Callable[[list[bytes]], None]] = {
        "jsonl": client_path(jsonl_writer),
        "text": client_path(text_writer),
        "floor": floor,
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    for run in rows.values():  # warm up: imports, caches, the allocator
        run(messages[:20])
    for _ in range(args.runs):
        for name, run in rows.items():
            start = time.process_time()
            run(messages)
            times[name].append((time.process_time() - start) / events * 1e6)
    size = sum(map(len, messages)) / (len(messages) - 1)
    print(
        f"dump client path, {events:,} flood events in {len(messages) - 1} batches "
        f"(~{size / 1024:.0f} KiB each), CPU us per event, median of {args.runs} runs"
    )
    base = statistics.median(times["floor"])
    print(f"{'path':<6} {'us/event':>9} {'min':>7} {'max':>7} {'x floor':>8}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(
            f"{name:<6} {median:>9.3f} {min(samples):>7.3f} {max(samples):>7.3f} "
            f"{median / base:>7.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
