"""A FIN's acknowledgement captured before the FIN: one sequence number, not a lost byte.

Each scenario is fed twice, one segment at a time through ``feed`` and as one batch through
``feed_frames``, and both must read the same. The acknowledgement comes either on the peer's own
FIN (the slow path) or on a bare ACK (the in-order path of ``feed_frames``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agent.events import AnyEvent
from agent.packet import ACK, FIN, PSH, Segment, frame_of
from agent.tcp import Limits, Reassembler
from tests.unit.tcp_traffic import SERVER_PORT, Flow, Piece, Transcript

pytestmark = pytest.mark.timeout(10)

REQUEST = b"GET /api/users/1 HTTP/1.1\r\nHost: shop\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
FLOW = Flow()
END = 1000.0  # capture time of whatever ends the connection after the segments

Ending = Callable[[Reassembler], list[AnyEvent]]


def fed(segments: list[Segment], mode: str, ending: Ending | None = None) -> Transcript:
    """The transcript of a handshake and ``segments``, fed as ``mode`` says, then ``ending``."""
    reassembler = Reassembler(frozenset({SERVER_PORT}), Limits(idle_timeout=30.0))
    transcript = Transcript()
    all_segments = [FLOW.syn(), FLOW.syn_ack(), *segments]
    if mode == "feed":
        for index, segment in enumerate(all_segments):
            transcript.extend(reassembler.feed(segment, 100.0 + index * 0.001, "eth0"))
    else:
        frames = [
            frame_of(100.0 + index * 0.001, "eth0", segment)
            for index, segment in enumerate(all_segments)
        ]
        transcript.extend(reassembler.feed_frames(frames))
    if ending is not None:
        transcript.extend(ending(reassembler))
    return transcript


def both_ways(segments: list[Segment], ending: Ending | None = None) -> Transcript:
    one_by_one, batched = fed(segments, "feed", ending), fed(segments, "frames", ending)
    assert one_by_one.events == batched.events
    return batched


def served() -> list[Segment]:
    """A request and its response, every byte captured."""
    return [
        FLOW.segment("in", 0, REQUEST, PSH | ACK, 0),
        FLOW.segment("out", 0, RESPONSE, PSH | ACK, len(REQUEST)),
    ]


def ack_of_client_fin(how: str) -> Segment:
    """The server's acknowledgement of the client's FIN: one past the request's bytes."""
    flags = FIN | ACK if how == "fin-ack" else ACK
    return FLOW.segment("out", len(RESPONSE), b"", flags, len(REQUEST) + 1)


ACK_KINDS = ["fin-ack", "bare-ack"]


@pytest.mark.parametrize("how", ACK_KINDS)
def test_a_fin_acknowledged_before_it_is_seen_is_no_lost_byte(how: str) -> None:
    client_fin = FLOW.fin("in", len(REQUEST), len(RESPONSE))
    transcript = both_ways([*served(), ack_of_client_fin(how), client_fin])
    assert transcript.gaps() == []
    assert transcript.stream(0, "in") == REQUEST
    if how == "fin-ack":
        assert [e.reason for e in transcript.closed()] == ["fin"]


def test_the_fin_ack_of_each_side_seen_before_that_side_s_fin_reports_nothing() -> None:
    # The server closes first; each FIN reaches the capture after the ACK of it.
    segments = [
        *served(),
        FLOW.fin("in", len(REQUEST), len(RESPONSE) + 1),
        FLOW.fin("out", len(RESPONSE), len(REQUEST)),
    ]
    transcript = both_ways(segments)
    assert transcript.gaps() == []
    assert [e.reason for e in transcript.closed()] == ["fin"]


@pytest.mark.parametrize("how", ACK_KINDS)
def test_bytes_beyond_the_acknowledged_number_make_it_a_lost_byte(how: str) -> None:
    # The client's byte at len(REQUEST) was missed; more of its bytes follow it.
    later = FLOW.segment("in", len(REQUEST) + 1, b"GET /b", PSH | ACK, len(RESPONSE))
    transcript = both_ways([*served(), ack_of_client_fin(how), later])
    expected: list[Piece] = [("data", REQUEST), ("gap", 1), ("data", b"GET /b")]
    assert transcript.pieces(0, "in") == expected
    [gap] = transcript.gaps()
    assert (gap.length, gap.reason) == (1, "lost")


def test_a_fin_beyond_the_acknowledged_number_makes_it_a_lost_byte_at_once() -> None:
    later_fin = FLOW.fin("in", len(REQUEST) + 3, len(RESPONSE))
    transcript = both_ways([*served(), ack_of_client_fin("bare-ack"), later_fin])
    assert [gap.length for gap in transcript.gaps()] == [1]


def test_an_acknowledgement_further_on_makes_one_gap_of_both() -> None:
    further = FLOW.segment("out", len(RESPONSE), b"", ACK, len(REQUEST) + 2)
    transcript = both_ways([*served(), ack_of_client_fin("bare-ack"), further])
    assert [gap.length for gap in transcript.gaps()] == [2]


def test_the_acknowledged_byte_itself_arriving_is_delivered() -> None:
    late = FLOW.segment("in", len(REQUEST), b"!", PSH | ACK, len(RESPONSE))
    transcript = both_ways([*served(), ack_of_client_fin("bare-ack"), late])
    assert transcript.gaps() == []
    assert transcript.stream(0, "in") == REQUEST + b"!"


def test_data_already_waiting_beyond_it_makes_the_acknowledged_number_a_byte() -> None:
    waiting = FLOW.segment("in", len(REQUEST) + 1, b"xyz", PSH | ACK, len(RESPONSE))
    transcript = both_ways([*served(), waiting, ack_of_client_fin("bare-ack")])
    assert transcript.pieces(0, "in") == [("data", REQUEST), ("gap", 1), ("data", b"xyz")]


ENDINGS: dict[str, tuple[Ending, str]] = {
    "rst": (lambda r: r.feed(FLOW.rst("out", len(RESPONSE)), END, "eth0"), "rst"),
    "idle": (lambda r: r.expire(END), "idle"),
    "shutdown": (lambda r: r.close_all(END), "shutdown"),
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.parametrize("how", ACK_KINDS)
def test_a_connection_ending_without_that_fin_reports_the_lost_byte(how: str, ending: str) -> None:
    end, reason = ENDINGS[ending]
    transcript = both_ways([*served(), ack_of_client_fin(how)], end)
    assert transcript.pieces(0, "in") == [("data", REQUEST), ("gap", 1)]
    assert [e.reason for e in transcript.closed()] == [reason]


@pytest.mark.parametrize("how", ACK_KINDS)
def test_an_evicted_connection_reports_the_lost_byte(how: str) -> None:
    reassembler = Reassembler(frozenset({SERVER_PORT}), Limits(max_connections=1))
    transcript = Transcript()
    for index, segment in enumerate(
        [FLOW.syn(), FLOW.syn_ack(), *served(), ack_of_client_fin(how)]
    ):
        transcript.extend(reassembler.feed(segment, 100.0 + index, "eth0"))
    other = Flow(client_port=40001)
    transcript.extend(reassembler.feed(other.syn(), 200.0, "eth0"))
    assert transcript.pieces(0, "in") == [("data", REQUEST), ("gap", 1)]
    assert [(e.conn, e.reason) for e in transcript.closed()] == [(0, "evicted")]
