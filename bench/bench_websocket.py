"""WebSocket decoding throughput, in messages per second, against the ``websockets`` library
reading the same bytes.

    .venv/bin/python bench/bench_websocket.py [--messages 20000] [--runs 5]

The stream: one chat connection, JSON text messages of 60 to 400 bytes both ways (clients mask
theirs), a ping now and then, cut into 1,448-byte segments as TCP carries them. Twice: plain,
and with permessage-deflate (context takeover both ways, websockets' defaults).

Contenders, in CPU time of this process, interleaved round by round, median of --runs:
* podtap: tui.model.websocket.WebSocketDecoder fed both directions (what a tap must do);
* websockets: the library's own sans-IO protocols, a server reading the client's bytes and a
  client reading the server's (two endpoints, each reading one side): the reference.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.protocol import Protocol
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from agent.events import Direction
from tui.model.flows import Exchange, Request, Response
from tui.model.websocket import WebSocketDecoder

SEGMENT = 1448
Chunk = tuple[Direction, bytes]


class Quiet:
    def exchange_changed(self, exchange: Exchange) -> None:
        pass


def _pair(deflate: bool) -> tuple[ClientProtocol, ServerProtocol, list[tuple[str, str]]]:
    client = ClientProtocol(
        parse_uri("ws://chat.local/room"),
        extensions=[ClientPerMessageDeflateFactory()] if deflate else [],
    )
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()] if deflate else [])
    client.send_request(client.connect())
    server.receive_data(b"".join(client.data_to_send()))
    response = server.accept(server.events_received()[0])  # type: ignore[arg-type]
    server.send_response(response)
    client.receive_data(b"".join(server.data_to_send()))
    client.events_received()
    return client, server, list(response.headers.raw_items())


def build(messages: int, deflate: bool) -> tuple[list[Chunk], list[tuple[str, str]]]:
    rng = random.Random(7)
    client, server, headers = _pair(deflate)
    streams: dict[Direction, bytearray] = {"in": bytearray(), "out": bytearray()}
    chunks: list[Chunk] = []
    for n in range(messages):
        direction: Direction = "in" if n % 2 else "out"
        peer: Protocol = client if direction == "in" else server
        text = json.dumps(
            {
                "from": f"user-{n % 9}",
                "seq": n,
                "text": " ".join(
                    rng.choice(["order", "stock", "ok", "sku-1001", "pending", "shipped", "hello"])
                    for _ in range(rng.randint(8, 60))
                ),
            }
        )
        peer.send_text(text.encode())
        if n % 50 == 0:
            peer.send_ping(b"%d" % n)
        streams[direction] += b"".join(peer.data_to_send())
        for side, buffer in streams.items():
            while len(buffer) >= SEGMENT:
                chunks.append((side, bytes(buffer[:SEGMENT])))
                del buffer[:SEGMENT]
    chunks += [(side, bytes(buffer)) for side, buffer in streams.items() if buffer]
    return chunks, headers


def run_podtap(chunks: list[Chunk], headers: list[tuple[str, str]]) -> int:
    exchange = Exchange(
        key=("bench", 0),
        index=0,
        request=Request(method="GET"),
        response=Response(status=101, headers=headers),
    )
    decoder = WebSocketDecoder(exchange, max_messages=10**9)
    sink = Quiet()
    for side, data in chunks:
        decoder.feed(side, data, 0.0, sink)
    return len(exchange.messages)


def run_websockets(chunks: list[Chunk], deflate: bool) -> int:
    client, server, _ = _pair(deflate)
    count = 0
    for side, data in chunks:
        reader: Protocol = server if side == "in" else client
        reader.receive_data(data)
        count += len(reader.events_received())
        reader.data_to_send()  # pongs it would answer with: discarded
    return count


def cpu(action: Callable[..., int], *args: object) -> tuple[float, int]:
    started = time.process_time()
    count = action(*args)
    return time.process_time() - started, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for deflate in (False, True):
        chunks, headers = build(args.messages, deflate)
        size = sum(len(data) for _, data in chunks)
        times: dict[str, list[float]] = {"podtap": [], "websockets": []}
        counts: dict[str, int] = {}
        for _ in range(args.runs):
            seconds, counts["podtap"] = cpu(run_podtap, chunks, headers)
            times["podtap"].append(seconds)
            seconds, counts["websockets"] = cpu(run_websockets, chunks, deflate)
            times["websockets"].append(seconds)
        label = "permessage-deflate" if deflate else "plain"
        print(
            f"{label}: {counts['podtap']:,} messages (websockets saw {counts['websockets']:,}),"
            f" {size / 1e6:.1f} MB"
        )
        medians = {name: statistics.median(values) for name, values in times.items()}
        for name, median in medians.items():
            print(
                f"  {name:<11} {counts[name] / median:>10,.0f} messages/s"
                f"  {size / median / 1e6:6.1f} MB/s  (median of {args.runs})"
            )
        print(f"  podtap / websockets: {medians['websockets'] / medians['podtap']:.2f}")


if __name__ == "__main__":
    main()
