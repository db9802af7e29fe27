"""The part of msgspec the agent uses, in pure Python: for a stock Python image without it.

podtap can run its agent on an image that has nothing but Python (docs/kubernetes.md), where
msgspec, a compiled extension, is missing. The agent then uses this module instead (see
agent/codec.py): ``Struct`` with tagged, keyword-only fields; msgpack encoding of structs,
lists, maps, text, bytes, numbers and None; decoding of msgpack into tagged structs. Nothing
else of msgspec is here. It costs speed, not correctness (bench/bench_kube_scale.py measures
the encoding of a batch both ways).
"""

from __future__ import annotations

import base64
import inspect
import json as _json
import struct
import types
import typing
from typing import Any, ClassVar


class DecodeError(ValueError):
    pass


class ValidationError(ValueError):
    pass


class Struct:
    """Fields are the class's annotations, in order, parents first; a value in the class body
    is the field's default. Subclasses name their ``tag`` (and a base its ``tag_field``)."""

    __struct_fields__: ClassVar[tuple[str, ...]] = ()
    __struct_defaults__: ClassVar[dict[str, Any]] = {}
    __struct_tag_field__: ClassVar[str | None] = None
    __struct_tag__: ClassVar[str | None] = None

    def __init_subclass__(
        cls,
        tag_field: str | None = None,
        tag: str | None = None,
        kw_only: bool = False,
        gc: bool = True,
    ) -> None:
        # ``gc`` is accepted for msgspec's sake only: plain Python objects are always tracked.
        if tag_field is not None:
            cls.__struct_tag_field__ = tag_field
        cls.__struct_tag__ = tag
        fields = list(cls.__struct_fields__)
        defaults = dict(cls.__struct_defaults__)
        for name, annotation in inspect.get_annotations(cls).items():
            if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
            if name not in fields:
                fields.append(name)
        cls.__struct_fields__ = tuple(fields)
        cls.__struct_defaults__ = defaults

    def __init__(self, **values: Any) -> None:
        defaults = self.__struct_defaults__
        for name in self.__struct_fields__:
            if name in values:
                setattr(self, name, values.pop(name))
            elif name in defaults:
                setattr(self, name, defaults[name])
            else:
                raise TypeError(f"Missing required argument '{name}'")
        if values:
            raise TypeError(f"Unexpected keyword argument '{next(iter(values))}'")

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, name) == getattr(other, name) for name in self.__struct_fields__
        )

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__struct_fields__)
        return f"{type(self).__name__}({shown})"


def _replace(value: Struct, **changes: Any) -> Struct:
    fields = {name: getattr(value, name) for name in value.__struct_fields__}
    return type(value)(**{**fields, **changes})


structs = types.SimpleNamespace(replace=_replace)


# -- msgpack -------------------------------------------------------------------------------


def _encode(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(0xC0)
    elif value is True or value is False:
        out.append(0xC3 if value else 0xC2)
    elif isinstance(value, int):
        _encode_int(value, out)
    elif isinstance(value, float):
        out += b"\xcb" + struct.pack(">d", value)
    elif isinstance(value, str):
        data = value.encode()
        _header(len(data), out, 0xA0, 32, (0xD9, 0xDA, 0xDB))
        out += data
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        _header(len(data), out, None, 0, (0xC4, 0xC5, 0xC6))
        out += data
    elif isinstance(value, Struct):
        pairs = [(name, getattr(value, name)) for name in value.__struct_fields__]
        if value.__struct_tag_field__ is not None and value.__struct_tag__ is not None:
            pairs.insert(0, (value.__struct_tag_field__, value.__struct_tag__))
        _encode_map(pairs, out)
    elif isinstance(value, dict):
        _encode_map(list(value.items()), out)
    elif isinstance(value, list | tuple):
        _header(len(value), out, 0x90, 16, (None, 0xDC, 0xDD))
        for item in value:
            _encode(item, out)
    else:
        raise TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


def _encode_map(pairs: list[tuple[Any, Any]], out: bytearray) -> None:
    _header(len(pairs), out, 0x80, 16, (None, 0xDE, 0xDF))
    for key, item in pairs:
        _encode(key, out)
        _encode(item, out)


def _header(
    length: int,
    out: bytearray,
    fix: int | None,
    fix_limit: int,
    sized: tuple[int | None, int, int],
) -> None:
    """A length-prefixed header: the fix form below ``fix_limit``, else 8, 16 or 32 bits."""
    if fix is not None and length < fix_limit:
        out.append(fix | length)
    elif sized[0] is not None and length < 0x100:
        out += bytes((sized[0], length))
    elif length < 0x10000:
        out += bytes((sized[1],)) + struct.pack(">H", length)
    else:
        out += bytes((sized[2],)) + struct.pack(">I", length)


def _encode_int(value: int, out: bytearray) -> None:
    if 0 <= value < 0x80 or -32 <= value < 0:
        out += struct.pack(">b" if value < 0 else ">B", value)
    elif value >= 0:
        for code, form, limit in ((0xCC, ">B", 1 << 8), (0xCD, ">H", 1 << 16),
                                  (0xCE, ">I", 1 << 32), (0xCF, ">Q", 1 << 64)):  # fmt: skip
            if value < limit:
                out += bytes((code,)) + struct.pack(form, value)
                return
        raise OverflowError("int too big to convert")
    else:
        for code, form, limit in ((0xD0, ">b", 1 << 7), (0xD1, ">h", 1 << 15),
                                  (0xD2, ">i", 1 << 31), (0xD3, ">q", 1 << 63)):  # fmt: skip
            if value >= -limit:
                out += bytes((code,)) + struct.pack(form, value)
                return
        raise OverflowError("int too big to convert")


_SIZED: dict[int, tuple[str, str]] = {
    0xC4: ("bytes", ">B"), 0xC5: ("bytes", ">H"), 0xC6: ("bytes", ">I"),
    0xD9: ("str", ">B"), 0xDA: ("str", ">H"), 0xDB: ("str", ">I"),
    0xDC: ("array", ">H"), 0xDD: ("array", ">I"), 0xDE: ("map", ">H"), 0xDF: ("map", ">I"),
}  # fmt: skip
_NUMBERS: dict[int, str] = {
    0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
    0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
}  # fmt: skip


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, count: int) -> bytes:
        end = self.at + count
        if end > len(self.data):
            raise DecodeError("Input data was truncated")
        chunk, self.at = self.data[self.at : end], end
        return chunk

    def value(self) -> Any:
        code = self.take(1)[0]
        if code <= 0x7F or code >= 0xE0:
            return code if code <= 0x7F else code - 0x100
        if 0x80 <= code <= 0x8F:
            return self.map(code & 0x0F)
        if 0x90 <= code <= 0x9F:
            return [self.value() for _ in range(code & 0x0F)]
        if 0xA0 <= code <= 0xBF:
            return self.text(code & 0x1F)
        if code in (0xC0, 0xC2, 0xC3):
            return {0xC0: None, 0xC2: False, 0xC3: True}[code]
        if code in _NUMBERS:
            form = _NUMBERS[code]
            return struct.unpack(form, self.take(struct.calcsize(form)))[0]
        if code in _SIZED:
            kind, form = _SIZED[code]
            length = struct.unpack(form, self.take(struct.calcsize(form)))[0]
            if kind == "bytes":
                return self.take(length)
            if kind == "str":
                return self.text(length)
            if kind == "array":
                return [self.value() for _ in range(length)]
            return self.map(length)
        raise DecodeError(f"MessagePack type 0x{code:02x} is not supported")

    def text(self, length: int) -> str:
        try:
            return self.take(length).decode()
        except UnicodeDecodeError:
            raise DecodeError("Invalid UTF-8 in a string") from None

    def map(self, length: int) -> dict[Any, Any]:
        return {self.value(): self.value() for _ in range(length)}


def _convert(kind: Any, value: Any) -> Any:
    """``value`` (plain msgpack data) as ``kind``: a Struct, a union of tagged Structs, or a
    list of either; anything else passes as it is."""
    origin = typing.get_origin(kind)
    if origin is list:
        if not isinstance(value, list):
            raise ValidationError(f"Expected `array`, got `{type(value).__name__}`")
        (item,) = typing.get_args(kind)
        return [_convert(item, element) for element in value]
    choices = typing.get_args(kind) if origin in (types.UnionType, typing.Union) else (kind,)
    structs_ = [c for c in choices if isinstance(c, type) and issubclass(c, Struct)]
    if not structs_:
        return value
    if not isinstance(value, dict):
        raise ValidationError(f"Expected `object`, got `{type(value).__name__}`")
    chosen = structs_[0]
    tag_field = chosen.__struct_tag_field__
    if tag_field is not None:
        by_tag = {c.__struct_tag__: c for c in structs_}
        tag = value.get(tag_field)
        if tag not in by_tag:
            raise ValidationError(f"Invalid value {tag!r} - at `$.{tag_field}`")
        chosen = by_tag[tag]
    fields = {name: value[name] for name in chosen.__struct_fields__ if name in value}
    try:
        return chosen(**fields)
    except TypeError as error:
        raise ValidationError(str(error)) from None


class _MsgpackEncoder:
    def encode(self, value: Any) -> bytes:
        out = bytearray()
        _encode(value, out)
        return bytes(out)


class _MsgpackDecoder:
    def __init__(self, kind: Any = Any) -> None:
        self._kind = kind

    def decode(self, data: bytes) -> Any:
        reader = _Reader(bytes(data))
        value = reader.value()
        if reader.at != len(reader.data):
            raise DecodeError("Input data contained trailing bytes")
        return _convert(self._kind, value)


def _plain(value: Any) -> Any:
    if isinstance(value, Struct):
        fields = {name: getattr(value, name) for name in value.__struct_fields__}
        if value.__struct_tag_field__ is not None and value.__struct_tag__ is not None:
            fields = {value.__struct_tag_field__: value.__struct_tag__, **fields}
        return fields
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


class _JsonEncoder:
    def encode(self, value: Any) -> bytes:
        return _json.dumps(value, default=_plain, separators=(",", ":")).encode()


class _JsonDecoder:
    """The agent never reads JSON: only the client does, with msgspec."""

    def __init__(self, kind: Any = Any) -> None:
        self._kind = kind

    def decode(self, data: bytes | str) -> Any:
        raise DecodeError("reading JSON lines needs msgspec")


msgpack = types.SimpleNamespace(Encoder=_MsgpackEncoder, Decoder=_MsgpackDecoder)
json = types.SimpleNamespace(Encoder=_JsonEncoder, Decoder=_JsonDecoder)
