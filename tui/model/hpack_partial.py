"""HPACK header blocks decoded without the start of the connection.

A watcher that joins an HTTP/2 connection late (or loses bytes of it) has missed the dynamic
table entries the encoder inserted so far. Everything else is still readable: the static table,
literal names and values, and every entry inserted after the join, because the newest entries are
the last to be evicted and their sizes are known. Only a reference to an entry older than what
was seen is unknown, and it is reported as such instead of failing the whole block.

Once the entries seen fill the table (so that any older one must have been evicted) or the
encoder empties it with a size update to 0, the table is fully known again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hpack.exceptions import HPACKDecodingError
from hpack.hpack import decode_integer
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

_STATIC = HeaderTable.STATIC_TABLE
_STATIC_SIZE = len(_STATIC)
_ENTRY_OVERHEAD = 32
"""RFC 7541 4.1: an entry's size is its name, its value and 32 octets."""
_MAX_TABLE_SIZE = 1 << 20
"""A table size update past this is not believed (the encoder's peer would have refused it)."""

Field = tuple[bytes | None, bytes | None]
"""A header field; None where it referred to a table entry older than the capture."""


class MalformedHeaderBlock(Exception):
    """The block does not follow HPACK's encoding (truncated, impossible index)."""


@dataclass(slots=True)
class PartialHeaderTable:
    """The dynamic table as far as it was seen: newest entry first; None for unknown parts."""

    max_size: int = 4096
    entries: deque[Field] = field(default_factory=deque)
    sizes: deque[int] = field(default_factory=deque)
    size: int = 0
    older_unknown: bool = True
    """Entries inserted before the capture may still be in the table, after ``entries``."""

    def get(self, index: int) -> Field:
        if index <= 0:
            raise MalformedHeaderBlock(f"header table index {index}")
        if index <= _STATIC_SIZE:
            return _STATIC[index - 1]
        position = index - _STATIC_SIZE - 1
        if position < len(self.entries):
            return self.entries[position]
        if self.older_unknown:
            return (None, None)
        raise MalformedHeaderBlock(f"header table index {index} is past the table's end")

    def add(self, name: bytes | None, value: bytes | None, size: int) -> None:
        """Insert an entry; ``size`` is its true size even when parts of it are unknown."""
        self.entries.appendleft((name, value))
        self.sizes.appendleft(size)
        self.size += size
        self._evict()

    def resize(self, max_size: int) -> None:
        if max_size > _MAX_TABLE_SIZE:
            raise MalformedHeaderBlock(f"header table size {max_size}")
        self.max_size = max_size
        if max_size == 0:
            self.older_unknown = False
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size and self.entries:
            self.entries.pop()
            self.size -= self.sizes.pop()
        if self.size + _ENTRY_OVERHEAD > self.max_size:
            # No older entry, however small, can still fit beside the ones seen.
            self.older_unknown = False


class PartialDecoder:
    """Decodes header blocks into fields, tolerating references to entries it never saw."""

    def __init__(self) -> None:
        self.table = PartialHeaderTable()

    @property
    def complete(self) -> bool:
        """Every entry the table can hold is known: decoding is exact from here on."""
        return not self.table.older_unknown

    def decode(self, block: bytes) -> list[Field]:
        """The block's fields in order; raises MalformedHeaderBlock (after updating the table
        with what came before the fault, as the encoder did)."""
        view = memoryview(block)
        fields: list[Field] = []
        at = 0
        try:
            while at < len(block):
                at = self._one(view, at, fields)
        except (HPACKDecodingError, IndexError) as exc:
            raise MalformedHeaderBlock(str(exc)) from None
        return fields

    def _one(self, view: memoryview, at: int, fields: list[Field]) -> int:
        first = view[at]
        if first & 0x80:
            index, used = decode_integer(view[at:], 7)
            fields.append(self.table.get(index))
            return at + used
        if first & 0x40:
            return self._literal(view, at, 6, fields, index=True)
        if first & 0x20:
            size, used = decode_integer(view[at:], 5)
            self.table.resize(size)
            return at + used
        return self._literal(view, at, 4, fields, index=False)

    def _literal(
        self, view: memoryview, at: int, prefix: int, fields: list[Field], index: bool
    ) -> int:
        name_index, used = decode_integer(view[at:], prefix)
        at += used
        name: bytes | None
        if name_index:
            name = self.table.get(name_index)[0]
            name_size = None if name is None else len(name)
        else:
            name, at = _string(view, at)
            name_size = len(name)
        value, at = _string(view, at)
        fields.append((name, value))
        if index:
            # The entry's size needs its name's length: unknown for an unknown name, which only
            # matters for eviction order, so count the smallest it could be.
            self.table.add(name, value, (name_size or 0) + len(value) + _ENTRY_OVERHEAD)
        return at


def _string(view: memoryview, at: int) -> tuple[bytes, int]:
    length, used = decode_integer(view[at:], 7)
    start = at + used
    end = start + length
    if end > len(view):
        raise MalformedHeaderBlock("truncated header block")
    raw = view[start:end].tobytes()
    if view[at] & 0x80:
        raw = decode_huffman(raw)
    return raw, end
