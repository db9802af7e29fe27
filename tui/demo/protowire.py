"""Just enough of the protobuf wire format for the demo's gRPC service, with no schema compiler:
varints and length-delimited fields, written from and read into plain dicts."""

from __future__ import annotations

Field = int | str | bytes
"""A varint (wire type 0), or a string or bytes (wire type 2)."""


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # negative int64s take ten bytes, as protobuf writes them
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode(fields: list[tuple[int, Field]]) -> bytes:
    """``[(field number, value), ...]`` as a message; repeat a number for a repeated field."""
    out = bytearray()
    for number, value in fields:
        if isinstance(value, int):
            out += _varint(number << 3) + _varint(value)
        else:
            data = value.encode() if isinstance(value, str) else value
            out += _varint(number << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def decode(data: bytes) -> dict[int, list[int | bytes]]:
    """Field number to values; raises ValueError on what is not a message of varints and
    length-delimited fields."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            fields.setdefault(number, []).append(value)
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise ValueError("a field runs past the end of the message")
            fields.setdefault(number, []).append(data[pos : pos + size])
            pos += size
        else:
            raise ValueError(f"wire type {wire} is not used by the demo")
    return fields


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 70:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("a varint is cut short")
