"""The wire format: how events travel over the websocket and into JSON lines.

A websocket binary message is a msgpack array of events (a batch); see docs/protocol.md.
The JSON-lines form (``podtap dump --format jsonl``, recordings) holds one event per line,
with ``data`` base64-encoded.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.codec import msgspec
from agent.events import AnyEvent

_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(list[AnyEvent])
_json_encoder = msgspec.json.Encoder()
_json_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)

EVENTS_PATH = "/v1/events"
"""The websocket path; query ``after=SEQ&agent=AGENT_ID`` resumes a stream."""

TOKEN_ENV = "PODTAP_TOKEN"

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""The largest message a client accepts: a batch is cut near 1 MiB and one event holds at most
64 KiB of data, so anything far larger is not an agent talking (and must not fill memory)."""


def encode_batch(events: Sequence[AnyEvent]) -> bytes:
    return _batch_encoder.encode(events)


def decode_batch(message: bytes) -> list[AnyEvent]:
    """Raises ``msgspec.ValidationError``/``msgspec.DecodeError`` on malformed input."""
    return _batch_decoder.decode(message)


def encode_json(event: AnyEvent) -> bytes:
    return _json_encoder.encode(event)


def decode_json(line: bytes | str) -> AnyEvent:
    return _json_decoder.decode(line)
