"""Content codings undone for display, search and HAR, within a bound."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.model.content import DECODED_LIMIT, content_codings, decode_body
from tui.model.flows import Response

pytestmark = pytest.mark.timeout(60)

TEXT = b'{"items": [' + b", ".join(b'"item %d"' % n for n in range(2000)) + b"]}"
CODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


def response(body: bytes, encoding: str, *, complete: bool = True, length: int = -1) -> Response:
    return Response(
        headers=[("Content-Encoding", encoding)] if encoding else [],
        body=body,
        body_length=len(body) if length < 0 else length,
        complete=complete,
        status=200,
    )


@pytest.mark.parametrize("coding", CODERS)
def test_each_coding_decodes_to_what_was_compressed(coding: str) -> None:
    decoded = decode_body(response(CODERS[coding](TEXT), coding))
    assert decoded.data == TEXT
    assert decoded.decoded
    assert decoded.describe() == f"decoded from {coding}"


def test_raw_deflate_and_concatenated_gzip_members() -> None:
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    bare = raw.compress(TEXT) + raw.flush()
    assert decode_body(response(bare, "deflate")).data == TEXT
    members = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decode_body(response(members, "gzip")).data == b"first second"


def test_stacked_codings_are_undone_in_reverse_order() -> None:
    body = brotli.compress(gzip.compress(TEXT))
    decoded = decode_body(response(body, "gzip, br"))
    assert decoded.data == TEXT
    assert decoded.codings == ("gzip", "br")


def test_identity_and_no_coding_leave_the_body_alone() -> None:
    assert decode_body(response(b"plain", "")).data == b"plain"
    assert decode_body(response(b"plain", "identity")).codings == ()
    assert content_codings(response(b"", "Identity, GZIP")) == ("gzip",)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_a_decompression_bomb_stops_at_the_limit(coding: str) -> None:
    bomb = CODERS[coding](bytes(64 << 20))
    assert len(bomb) < 100_000
    decoded = decode_body(response(bomb, coding))
    assert decoded.capped
    assert len(decoded.data) == DECODED_LIMIT
    assert "stopped at 1,048,576 bytes" in decoded.describe()


def test_a_body_kept_only_in_part_decodes_as_far_as_it_goes() -> None:
    whole = gzip.compress(bytes(range(256)) * 400, compresslevel=1)
    decoded = decode_body(response(whole[: len(whole) // 2], "gzip", length=len(whole)))
    assert decoded.partial
    assert 0 < len(decoded.data) < 256 * 400
    assert decoded.data == (bytes(range(256)) * 400)[: len(decoded.data)]


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_a_whole_body_whose_coding_stops_short_says_decoding_ended_early(coding: str) -> None:
    plain = bytes(range(256)) * 400
    coded = CODERS[coding](plain)
    # The message claims to be complete (its framing said so), yet the coded stream is cut.
    decoded = decode_body(response(coded[: len(coded) * 2 // 3], coding))
    assert decoded.ended_early
    assert not decoded.partial
    assert decoded.error is None
    assert decoded.data == plain[: len(decoded.data)]
    assert "decoding ended early" in decoded.describe()
    whole = decode_body(response(coded, coding))
    assert (whole.data, whole.ended_early, whole.describe()) == (
        plain,
        False,
        f"decoded from {coding}",
    )


def test_under_a_stacked_coding_that_ended_early_the_inner_one_decodes_as_far_as_it_goes() -> None:
    plain = bytes(range(256)) * 400
    body = brotli.compress(gzip.compress(plain, compresslevel=1))
    decoded = decode_body(response(body[: len(body) // 2], "gzip, br"))
    assert decoded.ended_early
    assert decoded.codings == ("gzip", "br")
    assert 0 < len(decoded.data) < len(plain)
    assert decoded.data == plain[: len(decoded.data)]


def test_a_body_that_does_not_decode_is_shown_as_sent_with_the_reason() -> None:
    decoded = decode_body(response(b"not gzip at all", "gzip"))
    assert decoded.data == b"not gzip at all"
    assert decoded.describe().startswith("shown as sent: not valid gzip")
    unknown = decode_body(response(b"abc", "compress"))
    assert unknown.error == "unknown content coding 'compress'"


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=300),
    coding=st.sampled_from([*CODERS, "gzip, br"]),
    complete=st.booleans(),
)
def test_arbitrary_bytes_never_raise(body: bytes, coding: str, complete: bool) -> None:
    decoded = decode_body(response(body, coding, complete=complete))
    assert len(decoded.data) <= max(len(body), DECODED_LIMIT)


@settings(max_examples=100, deadline=None)
@given(
    data=st.binary(max_size=2000),
    coding=st.sampled_from(list(CODERS)),
    flip=st.integers(0, 10_000),
    value=st.integers(0, 255),
)
def test_corrupt_streams_never_raise(data: bytes, coding: str, flip: int, value: int) -> None:
    body = bytearray(CODERS[coding](data))
    body[flip % len(body)] = value
    decode_body(response(bytes(body), coding))
