"""A recording being written (tui.output.recording): what it counts for --count and progress,
and a HAR that lists every request at every flush, answered or not yet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agent.errors import UserError
from tests.ui.fakes import Script, request, response, shop_updates
from tui.output.jsonl import RecordingHeader
from tui.output.recording import Recording, format_of

pytestmark = pytest.mark.timeout(30)

SCHEMA = json.loads((Path(__file__).with_name("har-1.2.schema.json")).read_text())
HEADER = RecordingHeader("0.1.0", "netns/shop", [8080])


def har_entries(path: Path) -> list[Any]:
    document = json.loads(path.read_bytes())
    jsonschema.validate(document, SCHEMA)
    entries: list[Any] = document["log"]["entries"]
    return entries


def two_connections() -> Script:
    """A Redis-like connection that closes, and an HTTP one: one exchange answered, one not."""
    s = Script().hello()
    s.open(1, "198.18.0.1", 40000, port=7000)
    s.data(1, "in", b"PING\r\n").data(1, "out", b"+PONG\r\n").close(1)
    s.open(2, "198.18.0.1", 40001)
    s.exchange(2, request("GET", "/a"), response(200, b"ok"))
    s.data(2, "in", request("GET", "/b"))
    return s


PAYLOAD = len(b"PING\r\n+PONG\r\n") + len(request("GET", "/a")) + len(response(200, b"ok"))
PAYLOAD += len(request("GET", "/b"))


@pytest.mark.parametrize(
    ("suffix", "count_exchanges"), [("jsonl", True), ("har", False), ("pcap", True)]
)
def test_progress_counts_exchanges_connections_and_bytes(
    tmp_path: Path, suffix: str, count_exchanges: bool
) -> None:
    updates = two_connections().updates()
    with Recording(tmp_path / f"r.{suffix}", HEADER, count_exchanges=count_exchanges) as recording:
        recording.write(updates)
        progress = recording.progress
        assert progress.decoded
        assert (progress.exchanges, progress.connections) == (1, 2)
        assert progress.other_connections_closed == 1
        assert progress.counted == 2  # what --count compares with
        assert progress.bytes == PAYLOAD
        assert progress.events == len(updates)


@pytest.mark.parametrize("suffix", ["jsonl", "pcap"])
def test_a_raw_recording_counts_events_without_decoding(tmp_path: Path, suffix: str) -> None:
    updates = two_connections().updates()
    with Recording(tmp_path / f"r.{suffix}", HEADER) as recording:
        recording.write(updates[:4])
        recording.write(updates[4:])
        progress = recording.progress
        assert not progress.decoded
        assert (progress.events, progress.connections, progress.bytes) == (
            len(updates),
            2,
            PAYLOAD,
        )
        assert progress.exchanges == progress.counted == 0  # not decoded: not counted
        assert progress.written == len(updates)


def test_a_har_lists_unanswered_requests_at_every_flush_then_answers_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live.har"
    s = Script().hello()
    s.open(1, "198.18.0.1", 40000)
    s.data(1, "in", request("GET", "/slow"))
    with Recording(path, HEADER) as recording:
        assert har_entries(path) == []  # valid from the start
        recording.write(s.updates())
        recording.flush()
        (pending,) = har_entries(path)
        assert (pending["request"]["url"], pending["response"]["status"]) == (
            "http://198.18.0.2:8080/slow",
            0,
        )
        more = Script(start=s.now + 0.2).open(2, "198.18.0.1", 40001)
        more.exchange(2, request("GET", "/fast"), response(200, b"quick"))
        more.data(1, "out", response(200, b"at last"), after=0.5)
        recording.write(more.updates())
        recording.flush()
        entries = har_entries(path)
        assert [(e["request"]["url"][-5:], e["response"]["status"]) for e in entries] == [
            ("/slow", 200),
            ("/fast", 200),
        ]
        assert entries[0]["response"]["content"]["text"] == "at last"
        assert entries[0]["timings"]["wait"] > 500
    # Closing rewrites nothing that was final; the document still ends properly.
    assert path.read_bytes().endswith(b'\n],"comment":"podtap record netns/shop on ports 8080"}}\n')
    assert len(har_entries(path)) == 2


def test_closing_writes_what_is_still_unanswered_as_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "end.har"
    s = Script().hello()
    s.open(1, "198.18.0.1", 40000)
    s.data(1, "in", request("POST", "/never", [("Content-Type", "text/plain")], b"hi"))
    with Recording(path, HEADER) as recording:
        recording.write(s.updates())
    (entry,) = har_entries(path)
    assert entry["_incomplete"] is True
    assert entry["request"]["postData"]["text"] == "hi"


def test_a_shop_capture_in_each_format_reads_back(tmp_path: Path) -> None:
    from tui.model.store import Store
    from tui.sources.recording import read_updates

    counts = {}
    for suffix in ("jsonl", "har", "pcap"):
        path = tmp_path / f"shop.{suffix}"
        with Recording(path, HEADER, reveal=True) as recording:
            recording.write(shop_updates())
        store = Store()
        store.apply(list(read_updates(path, [8080, 7000, 8443])))
        counts[suffix] = store.exchange_count
    assert counts == {"jsonl": 14, "har": 14, "pcap": 14}


def test_the_extension_names_the_format(tmp_path: Path) -> None:
    assert format_of("a/b.HAR") == "har"
    with pytest.raises(UserError, match=r"must end in \.jsonl, \.har or \.pcap"):
        format_of("capture.json")
    with pytest.raises(UserError, match=r"^Give a file name ending in \.jsonl, \.har or \.pcap"):
        format_of("")  # -o '' names nothing: not ": the file name must end in ..."
    with pytest.raises(UserError, match=r"^cannot write .*missing/x\.har: "):
        Recording(tmp_path / "missing" / "x.har", HEADER)


def test_a_recording_cut_short_by_a_crash_still_opens(tmp_path: Path) -> None:
    from tui.model.store import Store
    from tui.sources.recording import read_updates

    whole = tmp_path / "whole.jsonl"
    with Recording(whole, HEADER) as recording:
        recording.write(shop_updates())
    data = whole.read_bytes()
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(data[: data.rindex(b'{"type":"open"') + 30])  # mid-line, as SIGKILL leaves it
    store = Store()
    store.apply(list(read_updates(cut, [])))
    assert 0 < len(store.connections) < 9
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(data.replace(b'{"type":"open"', b'{"type":"nope"', 1))
    with pytest.raises(UserError, match=r"^damaged\.jsonl line \d+ is not a podtap event"):
        list(read_updates(damaged, []))


def test_a_websocket_entry_gets_every_message_until_its_connection_ends(tmp_path: Path) -> None:
    from tests.unit.ws_streams import Peers

    peers = Peers(deflate=True)
    peers.text("in", "first")
    peers.text("out", "second")
    handshake = request(
        "GET",
        "/chat",
        [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
    )
    accept = (
        "HTTP/1.1 101 Switching Protocols\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in peers.conversation.response_headers)
        + "\r\n"
    )
    path = tmp_path / "chat.har"
    s = Script().hello()
    s.open(1, "198.18.0.1", 40000)
    s.data(1, "in", handshake).data(1, "out", accept.encode())
    for direction, data in peers.conversation.chunks:
        s.data(1, direction, data)
    with Recording(path, HEADER) as recording:
        recording.write(s.updates())
        recording.flush()
        (entry,) = har_entries(path)
        assert [m["data"] for m in entry["_webSocketMessages"]] == ["first", "second"]
        peers.text("in", "third")
        s.events.clear()
        s.data(1, "in", peers.conversation.chunks[-1][1]).close(1)
        recording.write(s.updates())
    (entry,) = har_entries(path)
    assert [m["data"] for m in entry["_webSocketMessages"]] == ["first", "second", "third"]
