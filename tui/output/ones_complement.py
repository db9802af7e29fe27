"""The Internet checksum's arithmetic (RFC 1071), done by CPython's integer code in C.

The ones'-complement sum of 16-bit big-endian words is congruent, modulo 0xFFFF, to the plain
sum of those words, and 2**16 is 1 modulo 0xFFFF, so a whole byte string read as one big-endian
integer is congruent to the sum of its words. Parts of a packet can therefore be summed apart
(addresses once per connection, a payload once per segment) and added, and the checksum is the
negated total modulo 0xFFFF. The two ways differ in one case only: when every word is 0 (a
ones'-complement sum of 0, so a checksum of 0xFFFF where this gives 0), which no IPv4 header or
TCP segment can be (the version, and the pseudo-header's protocol number 6, are never 0).
"""

from __future__ import annotations

MODULUS = 0xFFFF

_FOLD_FROM = 1024
"""Above this many bytes, halving the integer by shifts and adds before the modulo is faster
than the modulo alone (whose C loop divides each 30-bit digit)."""


def word_sum(data: bytes) -> int:
    """A number congruent, modulo 0xFFFF, to the sum of ``data``'s 16-bit big-endian words (an
    odd length padded with a zero byte); below 2**24."""
    value = int.from_bytes(data, "big")
    if len(data) > _FOLD_FROM:
        value = _folded(value)
    # Padding is a shift by 8 bits, done after the modulo on the smaller number.
    return (value % MODULUS) << 8 if len(data) & 1 else value % MODULUS


def _folded(value: int) -> int:
    """``value`` made smaller, its remainder modulo 0xFFFF the same: split at a multiple of 16
    bits, the two halves add up to the same remainder (2**16k is 1 modulo 0xFFFF)."""
    while value.bit_length() > 8 * _FOLD_FROM:
        half = (value.bit_length() >> 5) << 4
        value = (value >> half) + (value & ((1 << half) - 1))
    return value


def checksum_of(total: int) -> int:
    """The checksum field that makes a packet whose other words sum to ``total`` verify."""
    return -total % MODULUS
