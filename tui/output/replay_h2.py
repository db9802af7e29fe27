"""Decoded HTTP/2 exchanges put back on the wire as HTTP/2, for ``replay``.

Each exchange becomes one stream (its own stream id if it had one): the request's HEADERS and
DATA at the request's time, the response's at the response's time, trailers last, encoded with
an hpack Encoder per direction after the client preface and a SETTINGS frame each way. Body
bytes that were not kept become a ``Gap`` inside their DATA frame, so the decoder marks the
stream incomplete instead of reading made-up bytes. A gRPC call whose messages are known with
their times (read from a HAR's ``_grpcMessages``) sends each message's bytes at its own time,
both directions in time order, so that the call decodes to the messages it had.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence

import hpack
from hyperframe.frame import DataFrame, HeadersFrame, SettingsFrame

from agent.events import AnyEvent, DataReceived, Direction, Gap
from tui.model.flows import Exchange, Message, Request
from tui.model.grpc import split_exactly
from tui.model.http2_frames import PREFACE

_MAX_DATA_FRAME = 16384
_GRPC_PREFIX = 5
"""A gRPC message's compressed flag and length, before its payload."""


def _time(event: AnyEvent) -> float:
    return event.ts


class Http2Replay:
    """Turns one connection's exchanges into events, keeping both header tables in step."""

    def __init__(self, conn: int, next_seq: Callable[[], int]) -> None:
        self._conn = conn
        self._seq = next_seq
        self._client = hpack.Encoder()
        self._server = hpack.Encoder()
        self._used: set[int] = set()
        self._next_id = 1

    def opening(self, ts: float) -> Iterator[AnyEvent]:
        settings = SettingsFrame(0).serialize()
        yield self._data("in", PREFACE + settings, ts)
        yield self._data("out", settings, ts)

    def exchange(self, exchange: Exchange) -> Iterator[AnyEvent]:
        stream_id = self._stream_id(exchange)
        times: dict[Direction, list[float]] = {"in": [], "out": []}
        for message in exchange.messages:
            if message.kind == "grpc":
                times[message.direction].append(message.time)
        sent: list[AnyEvent] = []
        request = exchange.request
        if request.method:
            head = [(":method", request.method), (":path", request.target or "/")]
            if request.host:
                head.append((":authority", request.host))
                # The authority is the host header's HTTP/2 form: not sent twice.
                request = _without_host(request)
            sent += self._message(
                "in",
                stream_id,
                head,
                request,
                exchange.started,
                exchange.request_finished,
                times["in"],
            )
        answered: list[AnyEvent] = []
        response = exchange.response
        if response is not None:
            when = exchange.response_started or exchange.started
            head = [(":status", str(response.status))]
            answered += self._message(
                "out", stream_id, head, response, when, exchange.finished, times["out"]
            )
        if not (times["in"] or times["out"]):
            yield from sent
            yield from answered
            return
        # A streaming call's two directions interleave: each side's order kept, the events
        # renumbered in the order they are now sent.
        numbers = sorted(event.seq for event in (*sent, *answered))
        for event, seq in zip(heapq.merge(sent, answered, key=_time), numbers, strict=True):
            event.seq = seq
            yield event

    def _stream_id(self, exchange: Exchange) -> int:
        wanted = exchange.stream_id
        if wanted is None or wanted % 2 == 0 or wanted in self._used or wanted < self._next_id:
            wanted = self._next_id
        self._used.add(wanted)
        self._next_id = wanted + 2
        return wanted

    def _message(
        self,
        direction: Direction,
        stream_id: int,
        head: list[tuple[str, str]],
        message: Message,
        start: float,
        end: float | None,
        grpc_times: Sequence[float] = (),
    ) -> Iterator[AnyEvent]:
        """HEADERS at ``start``; the frame that ends the stream at ``end`` (the decoder takes
        the message's end from it, so latencies come out as they were); each gRPC message at
        its time in ``grpc_times`` when the body holds exactly those messages."""
        encoder = self._client if direction == "in" else self._server
        headers = [(name.lower(), value) for name, value in message.headers]
        when = end if end is not None and end > start else start
        block = encoder.encode(head + headers)
        ends_here = not message.body_length and not message.trailers and when == start
        flags = ["END_HEADERS", "END_STREAM"] if ends_here else ["END_HEADERS"]
        yield self._data(direction, HeadersFrame(stream_id, block, flags=flags).serialize(), start)
        if ends_here:
            return
        frames = self._grpc_frames(direction, stream_id, message, grpc_times, start)
        if frames is None:
            yield from self._body(direction, stream_id, message, (start, when))
        else:
            yield from frames
            if not message.trailers:
                end_frame = DataFrame(stream_id, flags=["END_STREAM"])
                yield self._data(direction, end_frame.serialize(), when)
        if message.trailers:
            trailers = encoder.encode([(n.lower(), v) for n, v in message.trailers])
            frame = HeadersFrame(stream_id, trailers, flags=["END_HEADERS", "END_STREAM"])
            yield self._data(direction, frame.serialize(), when)
        elif not message.body_length:
            end_frame = DataFrame(stream_id, flags=["END_STREAM"])
            yield self._data(direction, end_frame.serialize(), when)

    def _body(
        self, direction: Direction, stream_id: int, message: Message, times: tuple[float, float]
    ) -> Iterator[AnyEvent]:
        """DATA frames at the message's start, the last one at its end; the bytes not kept
        are a gap inside their frame."""
        body = message.body
        total = message.body_length
        ends_stream = [] if message.trailers else ["END_STREAM"]
        for offset in range(0, total, _MAX_DATA_FRAME):
            length = min(_MAX_DATA_FRAME, total - offset)
            last = offset + length >= total
            ts = times[1] if last else times[0]
            frame = DataFrame(stream_id, flags=ends_stream if last else [])
            # The frame says the true length even where the bytes were not kept.
            header = length.to_bytes(3, "big") + frame.serialize()[3:9]
            kept = body[offset : offset + length]
            yield self._data(direction, header + kept, ts)
            if len(kept) < length:
                missing = length - len(kept)
                yield Gap(
                    seq=self._seq(), ts=ts, conn=self._conn, direction=direction, length=missing
                )

    def _grpc_frames(
        self,
        direction: Direction,
        stream_id: int,
        message: Message,
        times: Sequence[float],
        start: float,
    ) -> list[AnyEvent] | None:
        """DATA frames carrying one gRPC message each at its time, if the whole body was kept
        and is exactly as many messages as there are times (else None: sent as one body)."""
        body = message.body
        if not times or message.body_truncated:
            return None
        splits = split_exactly(body, 0)
        if len(splits) != len(times):
            return None
        frames: list[AnyEvent] = []
        at = 0
        for split, ts in zip(splits, times, strict=True):
            size = _GRPC_PREFIX + split.length
            for offset in range(at, at + size, _MAX_DATA_FRAME):
                piece = body[offset : min(offset + _MAX_DATA_FRAME, at + size)]
                frames.append(
                    self._data(direction, DataFrame(stream_id, piece).serialize(), max(ts, start))
                )
            at += size
        return frames

    def _data(self, direction: Direction, data: bytes, ts: float) -> DataReceived:
        return DataReceived(seq=self._seq(), ts=ts, conn=self._conn, direction=direction, data=data)


def _without_host(request: Request) -> Request:
    if request.header("host") != request.host:
        return request
    copy = Request(
        headers=[(n, v) for n, v in request.headers if n.lower() != "host"],
        trailers=request.trailers,
        body=request.body,
        body_length=request.body_length,
    )
    return copy
