"""gRPC message framing, protobuf shown schema-less, and HPACK decoded without its start."""

from __future__ import annotations

import gzip
import itertools

import hpack
import pytest
from google.protobuf import descriptor_pb2, struct_pb2, wrappers_pb2
from hypothesis import given
from hypothesis import strategies as st

from tui.model.flows import Exchange, Request
from tui.model.grpc import GrpcCall, MessageSplitter, decompress, split_exactly, status_name
from tui.model.hpack_partial import MalformedHeaderBlock, PartialDecoder
from tui.model.protobuf_raw import parse, render

pytestmark = pytest.mark.timeout(60)


def framed(*payloads: bytes, compressed: bool = False) -> bytes:
    flag = b"\x01" if compressed else b"\x00"
    return b"".join(flag + len(p).to_bytes(4, "big") + p for p in payloads)


@given(cuts=st.lists(st.integers(0, 60), max_size=8))
def test_messages_split_the_same_however_the_bytes_come(cuts: list[int]) -> None:
    stream = framed(b"one", b"", b"three" * 5)
    splitter = MessageSplitter(cap=10)
    bounds = [0, *sorted(c for c in cuts if c <= len(stream)), len(stream)]
    out = []
    for a, b in itertools.pairwise(bounds):
        out += splitter.feed(stream[a:b])
    assert [(m.data, m.length) for m in out] == [(b"one", 3), (b"", 0), (b"threethree", 25)]
    assert not splitter.pending


def test_a_message_cut_short_is_returned_as_far_as_it_came() -> None:
    splitter = MessageSplitter(cap=100)
    assert splitter.feed(framed(b"whole message")[:9]) == []
    cut = splitter.cut()
    assert cut is not None
    assert (cut.data, cut.length) == (b"whol", 13)


def test_split_exactly_only_accepts_a_clean_run_of_messages() -> None:
    assert [m.data for m in split_exactly(framed(b"a", b"bc"), 100)] == [b"a", b"bc"]
    assert split_exactly(framed(b"a") + b"\x00", 100) == []
    assert split_exactly(b"<html>", 100) == []


def test_gzip_messages_inflate_within_the_cap() -> None:
    plain, note = decompress(gzip.compress(b"x" * 1000), "gzip", 100)
    assert plain == b"x" * 100
    assert note.startswith("compressed (gzip")
    assert decompress(b"junk", "gzip", 100)[1] == "compressed (gzip), could not be inflated"
    assert status_name("5") == "NOT_FOUND"
    assert status_name("99") == "99"


def test_protobuf_rendered_like_decode_raw() -> None:
    answer = struct_pb2.Struct()
    answer.update({"name": "alice"})
    assert render(answer.SerializeToString()) == ('1 {\n  1: "name"\n  2 {\n    3: "alice"\n  }\n}')
    location = descriptor_pb2.SourceCodeInfo.Location(path=[1, 300, 2], leading_comments="hi\n")
    assert render(location.SerializeToString()) == '1: [1, 300, 2]\n3: "hi\\n"'
    assert render(wrappers_pb2.DoubleValue(value=1.0).SerializeToString()) == (
        "1: 0x3ff0000000000000"
    )
    assert render(wrappers_pb2.FloatValue(value=1.0).SerializeToString()) == "1: 0x3f800000"
    assert render(wrappers_pb2.BytesValue(value=b"\xff\x00").SerializeToString()) == (
        '1: "\\377\\000"'
    )
    assert render(b"\xff\xff").startswith("(not a protobuf message)")


@given(st.binary(max_size=200))
def test_any_bytes_render_without_raising(data: bytes) -> None:
    render(data)


def test_deep_nesting_is_bounded() -> None:
    data = b"\x08\x01"
    for _ in range(40):
        data = b"\x0a" + bytes([len(data)]) + data
    text = render(data)
    assert text.count("{") == 16  # deeper than that is shown as bytes
    assert parse(data)[0].number == 1


def test_hpack_without_the_start_knows_what_it_saw_and_marks_the_rest_unknown() -> None:
    encoder = hpack.Encoder()
    first = encoder.encode([(":method", "GET"), ("user-agent", "curl/8"), ("x-id", "1")])
    second = encoder.encode([(":method", "GET"), ("user-agent", "curl/8"), ("x-new", "yes")])
    third = encoder.encode([("x-new", "yes"), ("user-agent", "curl/8"), ("accept", "*/*")])
    assert first  # sent before the capture began
    decoder = PartialDecoder()
    assert decoder.decode(second) == [(b":method", b"GET"), (None, None), (b"x-new", b"yes")]
    assert decoder.decode(third) == [(b"x-new", b"yes"), (None, None), (b"accept", b"*/*")]
    assert not decoder.complete


def test_hpack_without_the_start_is_exact_once_the_table_turned_over() -> None:
    encoder = hpack.Encoder()
    encoder.encode([("x-old", "1")])
    decoder = PartialDecoder()
    big = [(f"x-{i}", "v" * 2000) for i in range(5)]
    decoder.decode(encoder.encode(big))
    assert decoder.complete
    assert decoder.decode(encoder.encode(big[-3:])) == [
        (name.encode(), value.encode()) for name, value in big[-3:]
    ]


def test_hpack_garbage_is_a_malformed_block() -> None:
    with pytest.raises(MalformedHeaderBlock):
        PartialDecoder().decode(b"\x00\x85abc")
    with pytest.raises(MalformedHeaderBlock):
        PartialDecoder().decode(b"\x80")


def test_a_long_call_keeps_its_first_messages_whole_and_then_only_their_sizes() -> None:
    exchange = Exchange(key=("local", 1), index=0, request=Request())
    call = GrpcCall(exchange, cap=100)
    call.feed("out", framed(*[bytes([n]) * 90 for n in range(10)]), 1.0)
    assert [m.length for m in exchange.messages] == [90] * 10
    assert sum(len(m.data) for m in exchange.messages) == 400
    assert exchange.messages[0].data == bytes(90)
    assert exchange.messages[-1].data == b""
    assert exchange.messages[-1].note == "first 0 bytes kept"
