"""JSON lines: one event per line, as agent.wire encodes it, plus the agent it came from.

    {"type":"open","seq":3,"ts":1764171600.5,"conn":0,...,"source":"local"}

``source`` is an extra field that the event decoder ignores, so every line is also a valid
``agent.wire.decode_json`` input; :func:`decode_line` gives both back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

import msgspec

from agent.events import AnyEvent
from agent.wire import decode_json, encode_json
from tui.sources.session import AgentEvent, Update


class _Source(msgspec.Struct):
    source: str = "local"


_source_decoder = msgspec.json.Decoder(_Source)
_string_encoder = msgspec.json.Encoder()


def encode_line(source: str, event: AnyEvent) -> bytes:
    """One line (with its newline) for ``event`` from ``source``."""
    body = encode_json(event)
    return body[:-1] + b',"source":' + _string_encoder.encode(source) + b"}\n"


def decode_line(line: bytes | str) -> tuple[str, AnyEvent]:
    """The source and event of a line written by :func:`encode_line`."""
    return _source_decoder.decode(line).source, decode_json(line)


class JsonLinesWriter:
    """Writes the events among updates as JSON lines, flushed per batch."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, updates: Sequence[Update]) -> None:
        lines = [
            encode_line(update.source, update.event)
            for update in updates
            if isinstance(update, AgentEvent)
        ]
        if lines:
            self._stream.write(b"".join(lines))
            self._stream.flush()
