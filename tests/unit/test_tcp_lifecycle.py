"""How connections begin and end in the reassembler, and what its bounds do: handshakes,
mid-stream joins, FIN orders, RST, port reuse, idle expiry, eviction and buffer limits."""

from __future__ import annotations

import pytest

from agent.events import AnyEvent, ConnectionClosed, ConnectionOpened, DataReceived, Gap
from agent.packet import ACK, FIN, PSH, RST, SYN, Segment
from agent.tcp import Limits, Reassembler
from tests.unit.tcp_traffic import MASK, SERVER_PORT, Flow, Transcript

pytestmark = pytest.mark.timeout(10)

REQUEST = b"GET /api/users/1 HTTP/1.1\r\nHost: shop\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


class Tap:
    """A reassembler and everything it said, fed one segment at a time."""

    def __init__(self, limits: Limits | None = None, ports: frozenset[int] | None = None) -> None:
        self.reassembler = Reassembler(ports or frozenset({SERVER_PORT}), limits or Limits())
        self.transcript = Transcript()
        self.ts = 100.0

    def __call__(self, *segments: Segment) -> list[AnyEvent]:
        new: list[AnyEvent] = []
        for segment in segments:
            self.ts += 0.01
            events = self.reassembler.feed(segment, self.ts, "eth0")
            self.transcript.extend(events)
            new.extend(events)
        return new

    def handshake(self, flow: Flow) -> None:
        self(flow.syn(), flow.syn_ack())

    def exchange(self, flow: Flow) -> None:
        """A request and its response, in order."""
        self(
            flow.segment("in", 0, REQUEST, PSH | ACK, 0),
            flow.segment("out", 0, RESPONSE, PSH | ACK, len(REQUEST)),
        )


def test_a_handshake_opens_one_connection_with_formatted_addresses() -> None:
    tap = Tap()
    tap.handshake(Flow())
    tap.exchange(Flow())
    [opened] = tap.transcript.opened()
    assert opened == ConnectionOpened(
        ts=opened.ts,
        conn=0,
        client="198.18.0.1",
        client_port=40000,
        server="198.18.0.2",
        server_port=SERVER_PORT,
        interface="eth0",
        mid_stream=False,
    )
    assert tap.transcript.stream(0, "in") == REQUEST
    assert tap.transcript.stream(0, "out") == RESPONSE
    assert tap.reassembler.open_connections == 1


def test_ipv6_addresses_are_formatted() -> None:
    flow = Flow(client_ip=bytes.fromhex("fd0007a9000000000000000000000001"),
                server_ip=bytes.fromhex("fd0007a9000000000000000000000002"))  # fmt: skip
    tap = Tap()
    tap.handshake(flow)
    [opened] = tap.transcript.opened()
    assert (opened.client, opened.server) == ("fd00:7a9::1", "fd00:7a9::2")


def test_the_in_order_path_stamps_capture_time_and_leaves_seq_to_the_journal() -> None:
    flow = Flow()
    tap = Tap()
    tap.handshake(flow)
    [event] = tap.reassembler.feed(flow.segment("in", 0, b"abc"), 42.5)
    assert event == DataReceived(seq=0, ts=42.5, conn=0, direction="in", data=b"abc")


@pytest.mark.parametrize("first", ["in", "out"])
def test_a_fin_from_each_side_closes_in_either_order(first: str) -> None:
    flow = Flow()
    tap = Tap()
    tap.handshake(flow)
    tap.exchange(flow)
    ends = {"in": len(REQUEST), "out": len(RESPONSE)}
    second = "out" if first == "in" else "in"
    peer = {"in": "out", "out": "in"}
    assert tap(flow.fin(first, ends[first], ends[peer[first]])) == []
    [closed] = tap(flow.fin(second, ends[second], ends[peer[second]] + 1))
    assert closed == ConnectionClosed(ts=closed.ts, conn=0, reason="fin")
    assert tap.reassembler.open_connections == 0
    # The final ACK and any late retransmission of the closed connection change nothing.
    assert tap(flow.segment(first, ends[first] + 1, b"", ACK, ends[second] + 1)) == []
    assert tap(flow.segment("in", 0, REQUEST, PSH | ACK, 0)) == []


def test_a_half_closed_connection_keeps_flowing_and_its_fin_is_not_a_lost_byte() -> None:
    flow = Flow()
    tap = Tap()
    tap.handshake(flow)
    tap(flow.segment("in", 0, REQUEST, PSH | FIN | ACK, 0))
    # The server acknowledges the request and the FIN (one sequence number past the bytes).
    tap(flow.segment("out", 0, RESPONSE, PSH | ACK, len(REQUEST) + 1))
    tap(flow.segment("out", len(RESPONSE), b"more", PSH | ACK, len(REQUEST) + 1))
    assert tap.transcript.gaps() == []
    assert tap.transcript.stream(0, "out") == RESPONSE + b"more"
    [closed] = tap(flow.fin("out", len(RESPONSE) + 4, len(REQUEST) + 1))
    assert isinstance(closed, ConnectionClosed)
    assert tap.transcript.stream(0, "in") == REQUEST


def test_a_fin_seen_before_the_last_bytes_waits_for_them() -> None:
    flow = Flow()
    tap = Tap()
    tap.handshake(flow)
    tap(flow.segment("in", 0, REQUEST[:10]))
    tap(flow.fin("in", len(REQUEST)))
    tap(flow.segment("in", 10, REQUEST[10:]))
    tap(flow.segment("in", 10, b"X" * (len(REQUEST) - 10)))  # late duplicate, other bytes
    tap(flow.fin("out", 0, len(REQUEST) + 1))
    assert tap.transcript.stream(0, "in") == REQUEST
    assert [e.reason for e in tap.transcript.closed()] == ["fin"]


def test_rst_flushes_what_is_buffered_and_closes() -> None:
    flow = Flow()
    tap = Tap()
    tap.handshake(flow)
    tap(flow.segment("in", 0, b"abc"), flow.segment("in", 10, b"klm"))
    assert tap.transcript.stream(0, "in") == b"abc"
    tap(flow.rst("out", 0))
    assert tap.transcript.pieces(0, "in") == [("data", b"abc"), ("gap", 7), ("data", b"klm")]
    assert [(e.reason, e.length) for e in tap.transcript.gaps()] == [("lost", 7)]
    assert [e.reason for e in tap.transcript.closed()] == ["rst"]
    assert tap(flow.segment("in", 13, b"nop")) == []
    assert tap.reassembler.open_connections == 0


def test_rst_for_an_unknown_connection_is_ignored() -> None:
    tap = Tap()
    assert tap(Flow().rst("in", 0)) == []


@pytest.mark.parametrize("flags", [RST, SYN | RST, SYN | RST | ACK])
def test_a_reset_after_the_connection_closed_is_ignored(flags: int) -> None:
    """A closed tuple lingers; a reset on it, even one that also carries SYN (which routes it
    past the check for late segments), must not close the connection a second time."""
    flow = Flow()
    tap = Tap()
    tap.handshake(flow)
    tap.exchange(flow)
    tap(
        flow.fin("in", len(REQUEST), len(RESPONSE)),
        flow.fin("out", len(RESPONSE), len(REQUEST) + 1),
    )
    assert tap(flow.rst("in", len(REQUEST) + 1)._replace(flags=flags)) == []
    assert [e.reason for e in tap.transcript.closed()] == ["fin"]
    assert tap.reassembler.open_connections == 0


def test_the_first_copy_of_a_byte_wins_over_a_different_retransmission() -> None:
    flow = Flow()
    tap = Tap()
    tap.handshake(flow)
    tap(flow.segment("in", 4, b"EFGH"))
    tap(flow.segment("in", 2, b"xxyyzzww"))  # overlaps the buffered bytes on both sides
    tap(flow.segment("in", 0, b"ABxxxxxxxxIJ"))
    assert tap.transcript.stream(0, "in") == b"ABxxEFGHwwIJ"
    events = [e for e in tap.transcript.events if isinstance(e, DataReceived)]
    assert len(events) == 1  # the drained buffer comes out merged with the segment that freed it


def test_sequence_numbers_wrap_around_2_to_the_32() -> None:
    flow = Flow(client_isn=MASK - 2, server_isn=MASK)
    tap = Tap()
    tap.handshake(flow)
    assert flow.seq("in", 0) == MASK - 1
    assert flow.seq("in", 5) < 10
    tap(flow.segment("in", 6, b"ghij"), flow.segment("in", 0, b"abcdef"))
    tap(flow.segment("out", 0, b"0123", ACK, 10), flow.segment("out", 4, b"4567", ACK, 10))
    assert tap.transcript.stream(0, "in") == b"abcdefghij"
    assert tap.transcript.stream(0, "out") == b"01234567"


def test_bytes_the_peer_acknowledged_but_we_never_saw_become_a_gap_at_once() -> None:
    flow = Flow()
    tap = Tap()
    tap.handshake(flow)
    tap(flow.segment("in", 0, b"GET /a"))
    # " HTTP/1.1\r\n\r\n" (13 bytes) is missed by the capture; the server's answer acks it.
    new = tap(flow.segment("out", 0, RESPONSE, PSH | ACK, 19))
    [gap] = [e for e in new if isinstance(e, Gap)]
    assert (gap.conn, gap.direction, gap.length, gap.reason) == (0, "in", 13, "lost")
    assert new.index(gap) < len(new) - 1  # reported before the response that revealed it
    tap(flow.segment("in", 19, b"GET /b"))
    assert tap.transcript.pieces(0, "in") == [
        ("data", b"GET /a"), ("gap", 13), ("data", b"GET /b"),
    ]  # fmt: skip
    assert (tap.reassembler.gaps, tap.reassembler.gap_bytes) == (1, 13)


def test_acks_that_are_behind_or_absurdly_far_ahead_declare_nothing() -> None:
    flow = Flow()
    tap = Tap()
    tap.handshake(flow)
    tap(flow.segment("in", 0, b"abcdef"))
    tap(flow.segment("out", 0, b"x", ACK, 3))
    tap(flow.segment("out", 1, b"y", ACK, 6 + 0x8000_0000))
    assert tap.transcript.gaps() == []


def test_joining_mid_stream_starts_each_direction_at_its_first_byte() -> None:
    flow = Flow()
    tap = Tap()
    # A bare ACK of an unknown connection opens nothing.
    assert tap(flow.segment("out", 500, b"", ACK, 900)) == []
    tap(flow.segment("out", 500, b"tail of a response", ACK, 900))
    tap(flow.segment("in", 900, REQUEST, PSH | ACK, 518))
    [opened] = tap.transcript.opened()
    assert opened.mid_stream
    assert (opened.client, opened.client_port, opened.server_port) == ("198.18.0.1", 40000, 8080)
    assert tap.transcript.stream(0, "out") == b"tail of a response"
    assert tap.transcript.stream(0, "in") == REQUEST


def test_mid_stream_with_both_ports_watched_takes_the_lower_as_the_server() -> None:
    flow = Flow(client_port=9000, server_port=7000)
    tap = Tap(ports=frozenset({7000, 9000}))
    tap(flow.segment("out", 0, b"hello"))
    [opened] = tap.transcript.opened()
    assert (opened.server_port, opened.client_port) == (7000, 9000)
    assert tap.transcript.stream(0, "out") == b"hello"


def test_segments_of_unwatched_ports_are_ignored() -> None:
    flow = Flow(server_port=9999)
    tap = Tap()
    assert tap(flow.syn(), flow.syn_ack(), flow.segment("in", 0, REQUEST)) == []
    assert tap.reassembler.open_connections == 0


def test_a_syn_ack_without_its_syn_still_opens_a_complete_connection() -> None:
    flow = Flow()
    tap = Tap()
    tap(flow.syn_ack())
    tap.exchange(flow)
    [opened] = tap.transcript.opened()
    assert not opened.mid_stream
    assert opened.client_port == 40000
    assert tap.transcript.stream(0, "in") == REQUEST
    assert tap.transcript.stream(0, "out") == RESPONSE


def test_a_retransmitted_syn_does_not_open_another_connection() -> None:
    flow = Flow()
    tap = Tap()
    tap(flow.syn(), flow.syn(), flow.syn_ack(), flow.syn_ack())
    tap.exchange(flow)
    assert len(tap.transcript.opened()) == 1
    assert tap.transcript.stream(0, "in") == REQUEST


def test_data_on_a_syn_is_the_first_bytes_of_the_stream() -> None:
    flow = Flow()
    tap = Tap()
    syn = flow.syn()
    tap(syn._replace(payload=b"GET /"), flow.syn_ack())
    tap(flow.segment("in", 5, b"fast HTTP/1.1\r\n\r\n", ACK, 0))
    assert tap.transcript.stream(0, "in") == b"GET /fast HTTP/1.1\r\n\r\n"


def test_port_reuse_after_close_starts_a_new_connection() -> None:
    old, new = Flow(), Flow(client_isn=777_777, server_isn=888_888)
    tap = Tap()
    tap.handshake(old)
    tap.exchange(old)
    tap(old.fin("in", len(REQUEST), len(RESPONSE)), old.fin("out", len(RESPONSE), len(REQUEST) + 1))
    tap.handshake(new)
    tap(new.segment("in", 0, b"second", PSH | ACK, 0))
    assert [e.conn for e in tap.transcript.opened()] == [0, 1]
    assert tap.transcript.stream(1, "in") == b"second"
    assert tap.reassembler.open_connections == 1


def test_a_new_syn_on_an_open_tuple_replaces_the_connection_that_ended_unseen() -> None:
    old, new = Flow(), Flow(client_isn=123_456)
    tap = Tap()
    tap.handshake(old)
    tap(old.segment("in", 0, b"abc"), old.segment("in", 5, b"fg"))
    tap.handshake(new)
    assert [(e.conn, e.reason) for e in tap.transcript.closed()] == [(0, "idle")]
    assert tap.transcript.pieces(0, "in") == [("data", b"abc"), ("gap", 2), ("data", b"fg")]
    assert [e.conn for e in tap.transcript.opened()] == [0, 1]


def test_idle_connections_expire_with_their_buffers_flushed() -> None:
    flow, busy = Flow(), Flow(client_port=40001)
    tap = Tap(Limits(idle_timeout=30.0))
    tap.handshake(flow)
    tap(flow.segment("in", 0, b"ab"), flow.segment("in", 4, b"ef"))
    tap.ts += 20
    tap.handshake(busy)
    assert tap.reassembler.expire(tap.ts + 5) == []
    expired = tap.reassembler.expire(tap.ts + 15)
    assert [type(e).__name__ for e in expired] == ["Gap", "DataReceived", "ConnectionClosed"]
    assert tap.transcript.stream(0, "in") == b"ab"
    assert isinstance(expired[-1], ConnectionClosed)
    assert (expired[-1].conn, expired[-1].reason) == (0, "idle")
    assert tap.reassembler.open_connections == 1
    # Traffic that resumes after expiry is a connection joined mid-stream.
    tap(flow.segment("in", 6, b"gh"))
    assert [(e.conn, e.mid_stream) for e in tap.transcript.opened()] == [(0, False), (1, False),
                                                                         (2, True)]  # fmt: skip


def test_closed_tuples_are_forgotten_after_they_linger() -> None:
    flow = Flow()
    tap = Tap(Limits(closed_linger=10.0))
    tap.handshake(flow)
    tap(flow.rst("in", 0))
    assert tap(flow.segment("in", 0, b"late")) == []
    tap.reassembler.expire(tap.ts + 11)
    assert [type(e).__name__ for e in tap(flow.segment("in", 0, b"late"))] == [
        "ConnectionOpened", "DataReceived",
    ]  # fmt: skip


def test_too_many_connections_evict_the_idlest() -> None:
    flows = [Flow(client_port=41000 + i) for i in range(3)]
    tap = Tap(Limits(max_connections=2))
    tap.handshake(flows[0])
    tap.handshake(flows[1])
    tap(flows[0].segment("in", 0, b"a"), flows[0].segment("in", 3, b"d"))  # 0 is now the freshest
    tap.handshake(flows[2])
    assert [(e.conn, e.reason) for e in tap.transcript.closed()] == [(1, "evicted")]
    assert tap.reassembler.open_connections == 2
    tap.transcript.extend(tap.reassembler.close_all(tap.ts))
    assert tap.transcript.pieces(0, "in") == [("data", b"a"), ("gap", 2), ("data", b"d")]
    assert [(e.conn, e.reason) for e in tap.transcript.closed()][1:] == [
        (0, "shutdown"), (2, "shutdown"),
    ]  # fmt: skip
    assert tap.reassembler.close_all(tap.ts) == []


def test_close_all_flushes_and_closes_everything_for_shutdown() -> None:
    flows = [Flow(client_port=41000 + i) for i in range(2)]
    tap = Tap()
    for flow in flows:
        tap.handshake(flow)
        tap(flow.segment("out", 2, b"cd"))
    tap.transcript.extend(tap.reassembler.close_all(200.0))
    for conn in (0, 1):
        assert tap.transcript.pieces(conn, "out") == [("gap", 2), ("data", b"cd")]
    assert [(e.conn, e.reason) for e in tap.transcript.closed()] == [
        (0, "shutdown"),
        (1, "shutdown"),
    ]
    assert tap.reassembler.open_connections == 0
    assert tap.reassembler.buffered_bytes == 0


def test_a_direction_over_its_buffer_bound_gives_up_the_hole() -> None:
    flow = Flow()
    tap = Tap(Limits(direction_buffer=10))
    tap.handshake(flow)
    tap(flow.segment("in", 0, b"ab"))
    tap(flow.segment("in", 5, b"fghi"), flow.segment("in", 9, b"jklm"))  # 8 bytes wait
    assert tap.transcript.gaps() == []
    tap(flow.segment("in", 15, b"pqr"))  # 11 would not fit
    assert tap.transcript.pieces(0, "in") == [
        ("data", b"ab"), ("gap", 3), ("data", b"fghijklm"),
    ]  # fmt: skip
    assert [(e.length, e.reason) for e in tap.transcript.gaps()] == [(3, "buffer-limit")]
    assert tap.reassembler.buffered_bytes == 3  # "pqr" waits for the bytes at 13
    tap(flow.segment("in", 2, b"cde"))  # too late: already declared lost
    tap(flow.segment("in", 13, b"no"))
    assert tap.transcript.pieces(0, "in")[-1] == ("data", b"fghijklmnopqr")


def test_retransmissions_of_buffered_bytes_do_not_count_against_the_bound() -> None:
    flow = Flow()
    tap = Tap(Limits(direction_buffer=10))
    tap.handshake(flow)
    for _ in range(3):
        tap(flow.segment("in", 2, b"cdefghij"))
    assert tap.transcript.gaps() == []
    assert tap.reassembler.buffered_bytes == 8
    tap(flow.segment("in", 0, b"ab"))
    assert tap.transcript.stream(0, "in") == b"abcdefghij"


def test_the_total_bound_takes_the_largest_buffer_across_connections() -> None:
    small, large = Flow(client_port=41000), Flow(client_port=41001)
    tap = Tap(Limits(total_buffer=12))
    tap.handshake(small)
    tap.handshake(large)
    tap(small.segment("in", 1, b"bc"))
    tap(large.segment("out", 4, b"efghijkl"))
    assert tap.reassembler.buffered_bytes == 10
    tap(small.segment("out", 1, b"xyz"))  # 13 > 12: the largest buffer is given up
    assert [(e.conn, e.direction, e.length, e.reason) for e in tap.transcript.gaps()] == [
        (1, "out", 4, "memory-limit"),
    ]  # fmt: skip
    assert tap.transcript.pieces(1, "out") == [("gap", 4), ("data", b"efghijkl")]
    assert tap.reassembler.buffered_bytes == 5


def test_stats_counters_follow_the_gap_events() -> None:
    flow = Flow()
    tap = Tap()
    tap.handshake(flow)
    tap(flow.segment("in", 3, b"d"), flow.segment("in", 6, b"g"))
    tap(flow.segment("out", 0, b"ok", ACK, 10))
    gaps = tap.transcript.gaps()
    assert [g.length for g in gaps] == [3, 2, 3]
    assert (tap.reassembler.gaps, tap.reassembler.gap_bytes) == (3, 8)
