"""Protocol Buffers messages read without their schema, like ``protoc --decode_raw``.

Only the wire format is known: field numbers, wire types, varints, fixed 32/64-bit values and
length-delimited bytes. A length-delimited field is shown as a nested message when it parses as
one, as text when it is readable text, as packed varints when it is a run of them, else as
escaped bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

_MAX_DEPTH = 16
_MAX_FIELDS = 2000
_MAX_FIELD_NUMBER = (1 << 29) - 1
_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


class NotProtobuf(Exception):
    """The bytes do not follow the protobuf wire format."""


@dataclass(slots=True)
class RawField:
    number: int
    wire_type: int
    value: int | bytes | list[RawField]
    """A number (varint, fixed32, fixed64), bytes, or a parsed nested message."""


def parse(data: bytes) -> list[RawField]:
    """The fields of ``data``, nested messages parsed; raises NotProtobuf."""
    return _parse(data, 0)


def render(
    data: bytes, indent: str = "  ", *, shown_string: Callable[[str], str] | None = None
) -> str:
    """``protoc --decode_raw``-style text; bytes that are no message are shown escaped.
    ``shown_string``, if given, rewrites each readable string field before it is quoted (so
    that a field's secrets can be masked without the quoting hiding them)."""
    try:
        fields = _parse(data, 0)
    except NotProtobuf:
        return f'(not a protobuf message) "{_escape(data)}"'
    lines: list[str] = []
    _render(fields, "", indent, lines, shown_string or _as_is)
    return "\n".join(lines)


def _as_is(text: str) -> str:
    return text


def _render(
    fields: list[RawField],
    prefix: str,
    indent: str,
    lines: list[str],
    shown_string: Callable[[str], str],
) -> None:
    for item in fields:
        value = item.value
        if isinstance(value, list):
            lines.append(f"{prefix}{item.number} {{")
            _render(value, prefix + indent, indent, lines, shown_string)
            lines.append(f"{prefix}}}")
        elif isinstance(value, bytes):
            lines.append(f"{prefix}{item.number}: {_bytes_text(value, shown_string)}")
        elif item.wire_type == 1:
            lines.append(f"{prefix}{item.number}: 0x{value:016x}")
        elif item.wire_type == 5:
            lines.append(f"{prefix}{item.number}: 0x{value:08x}")
        else:
            lines.append(f"{prefix}{item.number}: {value}")


def _bytes_text(value: bytes, shown_string: Callable[[str], str]) -> str:
    text = _readable(value)
    if text is not None:
        return '"' + shown_string(text).translate(_TEXT_ESCAPES) + '"'
    packed = _packed_varints(value)
    if packed is not None:
        return "[" + ", ".join(map(str, packed)) + "]"
    return f'"{_escape(value)}"'


def _parse(data: bytes, depth: int) -> list[RawField]:
    if depth > _MAX_DEPTH:
        raise NotProtobuf("nested too deep")
    fields: list[RawField] = []
    at, end = 0, len(data)
    while at < end:
        key, at = _varint(data, at)
        number, wire_type = key >> 3, key & 7
        if not 0 < number <= _MAX_FIELD_NUMBER or len(fields) >= _MAX_FIELDS:
            raise NotProtobuf(f"field number {number}")
        value: int | bytes | list[RawField]
        if wire_type == 0:
            value, at = _varint(data, at)
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            if at + size > end:
                raise NotProtobuf("truncated fixed field")
            value = int.from_bytes(data[at : at + size], "little")
            at += size
        elif wire_type == 2:
            length, at = _varint(data, at)
            if at + length > end:
                raise NotProtobuf("truncated length-delimited field")
            value = _nested_or_bytes(data[at : at + length], depth)
            at += length
        else:
            raise NotProtobuf(f"wire type {wire_type}")
        fields.append(RawField(number, wire_type, value))
    return fields


def _nested_or_bytes(chunk: bytes, depth: int) -> bytes | list[RawField]:
    """A nested message unless the bytes read better as text (protoc would call "hi" a
    message if it happened to parse; people rarely mean that)."""
    if not chunk or _readable(chunk, strict=True) is not None:
        return chunk
    try:
        return _parse(chunk, depth + 1)
    except NotProtobuf:
        return chunk


def _varint(data: bytes, at: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise NotProtobuf("truncated varint")
        byte = data[at]
        at += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, at
        shift += 7


def _packed_varints(value: bytes) -> list[int] | None:
    numbers: list[int] = []
    at = 0
    try:
        while at < len(value):
            start = at
            number, at = _varint(value, at)
            if at - start > 1 and value[at - 1] == 0:
                return None  # No encoder pads a varint: these bytes are something else.
            numbers.append(number)
    except NotProtobuf:
        return None
    return numbers


def _readable(value: bytes, strict: bool = False) -> str | None:
    """The text, if ``value`` is UTF-8 with no control characters (``strict``: no line breaks
    or tabs either, which nested messages often start with)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    allowed = "" if strict else "\t\n\r"
    if any((ch < " " and ch not in allowed) or ch == "\x7f" for ch in text):
        return None
    return text


def _escape(value: bytes) -> str:
    out = []
    for byte in value:
        if byte == 0x22:
            out.append('\\"')
        elif byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)
