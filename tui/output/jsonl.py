"""JSON lines: one event per line, as agent.wire encodes it, plus the agent it came from.

    {"podtap":"0.1.0","target":"netns/shop","ports":[8080]}
    {"type":"open","seq":3,"ts":1764171600.5,"conn":0,...,"source":"local"}

``podtap record -o FILE.jsonl`` writes the header line first; ``podtap dump --format jsonl``
prints the same event lines without it (its stdout is a stream, not a file). Readers accept
both. ``source`` is an extra field that the event decoder ignores, so every event line is also a
valid ``agent.wire.decode_json`` input; :func:`decode_line` gives both back.

These lines keep the raw bytes, secrets included: they are meant to be replayed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter
from typing import BinaryIO

import msgspec

from agent.errors import UserError
from agent.events import AnyEvent
from agent.wire import decode_json, encode_json
from tui.model.timestamps import plausible_time
from tui.model.updates import AgentEvent, Update


class RecordingHeader(msgspec.Struct, forbid_unknown_fields=False):
    """The first line of a recording: who wrote it, from what, on which ports."""

    podtap: str
    target: str = ""
    ports: list[int] = msgspec.field(default_factory=list)


class _Source(msgspec.Struct):
    source: str = "local"


_source_decoder = msgspec.json.Decoder(_Source)
_header_decoder = msgspec.json.Decoder(RecordingHeader)
_string_encoder = msgspec.json.Encoder()
# With agent.wire's encoder's options (the defaults), so that a batch's lines are its events'.
_lines_encoder = msgspec.json.Encoder()
_source_of = attrgetter("source")
_event_of = attrgetter("event")
_LINES_PER_PIECE = 256
"""Events encoded at once: a piece stays well under the allocator's threshold for mapping
fresh pages, which a batch of a thousand events' lines would cross twice (encode, replace)."""


def encode_line(source: str, event: AnyEvent) -> bytes:
    """One line (with its newline) for ``event`` from ``source``."""
    body = encode_json(event)
    return body[:-1] + b',"source":' + _string_encoder.encode(source) + b"}\n"


def encode_lines(updates: Sequence[Update]) -> bytes:
    """The lines of the events among ``updates``: :func:`encode_line`'s, byte for byte.

    A flood brings a thousand events per batch: msgspec encodes each run of events from one
    source in one call, and one pass over the result adds their source to every line.
    """
    events = [update for update in updates if isinstance(update, AgentEvent)]
    parts = []
    for source, run in groupby(events, _source_of):
        closing = b',"source":' + _string_encoder.encode(source) + b"}"
        run_events = list(map(_event_of, run))
        for start in range(0, len(run_events), _LINES_PER_PIECE):
            piece = run_events[start : start + _LINES_PER_PIECE]
            parts.append(_encode_piece(source, closing, piece))
    return b"".join(parts)


def _encode_piece(source: str, closing: bytes, events: list[AnyEvent]) -> bytes:
    lines = _lines_encoder.encode_lines(events)
    # Each line ends with its object's brace. Where that is the only brace of the line, each
    # brace is a line's end and gets the source: a replace of one character runs at memory
    # speed (unlike one of "}\n"). The growth counts the braces replaced.
    marked = lines.replace(b"}", closing)
    if len(marked) - len(lines) == len(events) * (len(closing) - 1):
        return marked
    # A string (an address, a reason) holds a brace too: line by line.
    return b"".join([encode_line(source, event) for event in events])


def decode_line(line: bytes | str) -> tuple[str, AnyEvent]:
    """The source and event of a line written by :func:`encode_line`."""
    return _source_decoder.decode(line).source, decode_json(line)


def encode_header(header: RecordingHeader) -> bytes:
    return _string_encoder.encode(header) + b"\n"


def decode_header(line: bytes) -> RecordingHeader | None:
    """The header in ``line``, or None if it is an event line (the header is optional)."""
    if b'"podtap"' not in line or b'"type"' in line:
        return None
    try:
        return _header_decoder.decode(line)
    except msgspec.ValidationError:
        return None


@dataclass(frozen=True, slots=True)
class LastLineCutShort:
    """The recording's last line ends without a newline and is no event: its writer stopped
    mid-write. It is left out, and whoever reads the file says so."""

    number: int
    size: int

    def sentence(self, name: str) -> str:
        return (
            f"{name}: its last line (line {self.number}, {self.size:,} bytes) is cut short, as "
            "when podtap stops mid-write, and is left out"
        )


def read_lines(
    lines: Iterable[bytes], name: str
) -> Iterator[AgentEvent | RecordingHeader | LastLineCutShort]:
    """The header (if any) and then every event of a JSON-lines recording called ``name``.

    Raises UserError naming the first line that is not a podtap event. Times out of any
    plausible range (1e20) are clamped. A last line cut short (no newline: the writer died
    mid-write) is left out, as a crash loses at most that, and ends the reading with a
    LastLineCutShort; unless it is the file's only line, which makes it no recording at all.
    """
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if number == 1:
            header = decode_header(line)
            if header is not None:
                yield header
                continue
        try:
            source, event = decode_line(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            if not line.endswith(b"\n") and number > 1:
                yield LastLineCutShort(number, len(line))
                return
            raise UserError(
                f"{name} line {number} is not a podtap event ({error}): open reads what "
                "podtap record or podtap dump --format jsonl wrote."
            ) from None
        if plausible_time(event.ts) != event.ts:
            event = msgspec.structs.replace(event, ts=plausible_time(event.ts))
        yield AgentEvent(source, event)


class JsonLinesWriter:
    """Writes the events among updates as JSON lines (after ``header``, if given), flushed per
    batch unless ``flush_each_batch`` is off (the owner then calls :meth:`flush`)."""

    def __init__(
        self,
        stream: BinaryIO,
        header: RecordingHeader | None = None,
        *,
        flush_each_batch: bool = True,
    ) -> None:
        self._stream = stream
        self._flush_each_batch = flush_each_batch
        self.bytes_written = 0
        if header is not None:
            self._put(encode_header(header))

    def write(self, updates: Sequence[Update]) -> None:
        lines = encode_lines(updates)
        if lines:
            self._put(lines)

    def _put(self, data: bytes) -> None:
        self._stream.write(data)
        self.bytes_written += len(data)
        if self._flush_each_batch:
            self._stream.flush()

    def flush(self) -> None:
        self._stream.flush()
