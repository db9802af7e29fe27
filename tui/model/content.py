"""Bodies as their sender meant them: ``Content-Encoding`` (gzip, deflate, br, zstd) undone.

Views, the ``~b`` filter and HAR show and search the decoded body; the raw view keeps the bytes
as they crossed the wire. Bodies come from strangers, so decoding is bounded: a few kilobytes of
gzip can inflate to gigabytes, and the decoder stops at ``limit`` bytes and says so instead.
A body that does not decode (wrong or unknown coding, corrupt bytes) is given back as it came,
with the reason.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import brotli
import zstandard

from tui.model.flows import Message

DECODED_LIMIT = 1 << 20
"""Most bytes one body decodes to; past it decoding stops and the body is marked capped."""

_STEP = 65_536
"""Output asked of a decompressor at once, so that a bomb never overshoots the limit by much."""


@dataclass(frozen=True, slots=True)
class DecodedBody:
    """A body with its content codings undone, as far as they could be.

    ``data`` is the decoded body (or the stored bytes when nothing was decoded). ``codings`` are
    the codings undone, in the order they were applied. ``capped`` says decoding stopped at the
    limit; ``partial`` that the encoded bytes at hand were not all of the body (capped by the
    store or cut by a loss), so ``data`` is its beginning; ``ended_early`` that the body was
    said to be whole yet its coding stopped before its end marker (a sender that cut it, or
    framing that lied), so ``data`` is as far as it went; ``error`` why decoding failed.
    """

    data: bytes
    codings: tuple[str, ...] = ()
    capped: bool = False
    partial: bool = False
    ended_early: bool = False
    error: str | None = None

    @property
    def decoded(self) -> bool:
        return bool(self.codings) and self.error is None

    def describe(self) -> str:
        """One line for a person: how the shown bytes relate to what was sent ("" if equal)."""
        if self.error is not None:
            return f"shown as sent: {self.error}"
        if not self.codings:
            return ""
        text = f"decoded from {', '.join(self.codings)}"
        if self.capped:
            text += f", stopped at {len(self.data):,} bytes (the rest is not decoded)"
        elif self.partial:
            text += ", from the part of the body at hand (cut, or still arriving)"
        elif self.ended_early:
            text += (
                f", decoding ended early at {len(self.data):,} bytes (the body ends before"
                " its coding's end marker)"
            )
        return text


class _TooLarge(Exception):
    """Decoding reached the limit: what was decoded so far is kept."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data


class _EndedEarly(Exception):
    """A body said to be whole ran out before its coding's end marker: what was decoded so far
    is kept, and the body is marked as ending early."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data


def content_codings(message: Message) -> tuple[str, ...]:
    """The codings of ``Content-Encoding``, in the order applied (``identity`` left out)."""
    codings: list[str] = []
    for value in message.header_values("content-encoding"):
        for token in value.split(","):
            coding = token.strip().lower()
            if coding and coding != "identity":
                codings.append(coding)
    return tuple(codings)


def decode_body(message: Message, limit: int = DECODED_LIMIT) -> DecodedBody:
    """``message``'s body with its ``Content-Encoding`` undone (at most ``limit`` bytes)."""
    codings = content_codings(message)
    partial = message.body_truncated or not message.complete
    if not codings or not message.body:
        return DecodedBody(message.body, partial=partial)
    return _decode(message.body, codings, partial, limit)


@lru_cache(maxsize=32)
def _decode(body: bytes, codings: tuple[str, ...], partial: bool, limit: int) -> DecodedBody:
    # Views redraw and filters rerun on the same bodies: decode each once. Bytes objects cache
    # their hash, so a hit costs an identity check.
    data = body
    ended_early = False
    for coding in reversed(codings):
        decoder = _DECODERS.get(coding)
        if decoder is None:
            return DecodedBody(body, partial=partial, error=f"unknown content coding {coding!r}")
        try:
            # Past a coding that ended early, the codings under it get only a beginning.
            data = decoder(data, limit, partial or ended_early)
        except _TooLarge as large:
            return DecodedBody(
                large.data, codings, capped=True, partial=partial, ended_early=ended_early
            )
        except _EndedEarly as early:
            data = early.data
            ended_early = True
        except (zlib.error, brotli.error, zstandard.ZstdError, EOFError) as error:
            return DecodedBody(body, partial=partial, error=f"not valid {coding}: {error}")
    return DecodedBody(data, codings, partial=partial, ended_early=ended_early)


def _gzip(data: bytes, limit: int, partial: bool) -> bytes:
    # 16 + MAX_WBITS: gzip header and trailer. A body may hold several gzip members.
    return _inflate(data, zlib.MAX_WBITS | 16, limit, partial)


def _deflate(data: bytes, limit: int, partial: bool) -> bytes:
    # HTTP's "deflate" is zlib-wrapped, but some servers send a bare deflate stream.
    try:
        return _inflate(data, zlib.MAX_WBITS, limit, partial)
    except zlib.error:
        return _inflate(data, -zlib.MAX_WBITS, limit, partial)


def _inflate(data: bytes, wbits: int, limit: int, partial: bool) -> bytes:
    out = bytearray()
    pending = data
    while pending:
        inflater = zlib.decompressobj(wbits)
        while pending:
            out += inflater.decompress(pending, _STEP)
            if len(out) > limit:
                raise _TooLarge(bytes(out[:limit]))
            pending = inflater.unconsumed_tail
        if not inflater.eof:
            if partial:
                return bytes(out)
            raise _EndedEarly(bytes(out))
        pending = inflater.unused_data if wbits & 16 else b""
    return bytes(out)


def _brotli(data: bytes, limit: int, partial: bool) -> bytes:
    decompressor = brotli.Decompressor()
    out = bytearray(decompressor.process(data, output_buffer_limit=_STEP))
    # Output is drained until none comes: the decompressor may hold some back while saying it
    # can take more input.
    while not decompressor.is_finished():
        if len(out) > limit:
            raise _TooLarge(bytes(out[:limit]))
        piece = decompressor.process(b"", output_buffer_limit=_STEP)
        if not piece:
            break
        out += piece
    if len(out) > limit:
        raise _TooLarge(bytes(out[:limit]))
    if not decompressor.is_finished() and not partial:
        raise _EndedEarly(bytes(out))
    return bytes(out)


def _zstd(data: bytes, limit: int, partial: bool) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
    out = bytearray()
    try:
        while True:
            piece = reader.read(_STEP)
            if not piece:
                break
            out += piece
            if len(out) > limit:
                raise _TooLarge(bytes(out[:limit]))
    except zstandard.ZstdError:
        if partial and out:
            return bytes(out)
        raise
    # The reader stops quietly where the bytes stop, even inside a frame: each frame is walked
    # again to see whether it reached its end (its output is within the limit, as just seen).
    if not partial and not _zstd_frames_end(data):
        raise _EndedEarly(bytes(out))
    return bytes(out)


def _zstd_frames_end(data: bytes) -> bool:
    rest = data
    while rest:
        frame = zstandard.ZstdDecompressor().decompressobj()
        frame.decompress(rest)
        if not frame.eof:
            return False
        rest = frame.unused_data
    return True


_DECODERS: dict[str, Callable[[bytes, int, bool], bytes]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}


def encode_body(data: bytes, codings: tuple[str, ...]) -> bytes:
    """``data`` coded with ``codings`` in order (those podtap cannot code are left out): how a
    decoded body read back from a file is put on the wire again."""
    for coding in codings:
        encoder = _ENCODERS.get(coding)
        if encoder is not None:
            data = encoder(data)
    return data


_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: zlib.compress(data, wbits=zlib.MAX_WBITS | 16),
    "x-gzip": lambda data: zlib.compress(data, wbits=zlib.MAX_WBITS | 16),
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}
