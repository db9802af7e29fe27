"""``podtap open`` of a malformed file: one sentence naming the entry, line or packet, exit 1;
absurd times clamped when read."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from agent.errors import UserError
from agent.events import DataReceived
from tests.ui.fakes import shop_updates
from tui.cli import main
from tui.model.store import Store
from tui.model.timestamps import LATEST
from tui.model.updates import AgentEvent, SessionNote
from tui.output.jsonl import JsonLinesWriter, RecordingHeader
from tui.output.recording import write_view
from tui.sources.recording import RecordingSession, read_updates
from tui.views.widgets.detail import clock_time

pytestmark = pytest.mark.timeout(60)

GOOD_ENTRY: dict[str, Any] = {
    "startedDateTime": "2026-01-01T00:00:00.000Z",
    "request": {
        "method": "GET",
        "url": "http://shop.local/a",
        "httpVersion": "HTTP/1.1",
        "headers": [{"name": "Host", "value": "shop.local"}],
    },
    "response": {
        "status": 200,
        "statusText": "OK",
        "httpVersion": "HTTP/1.1",
        "headers": [],
        "content": {"size": 2, "text": "ok"},
    },
    "timings": {"send": 1, "wait": 2, "receive": 1},
}


def entry(**changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(GOOD_ENTRY)), **changes}


def write_har(path: Path, entries: list[Any]) -> Path:
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    return path


BAD_ENTRIES = [
    ("an entry that is a list", [1, 2]),
    ("a header that is a string", entry(request={**GOOD_ENTRY["request"], "headers": ["Host"]})),
    ("headers that are an object", entry(request={**GOOD_ENTRY["request"], "headers": {}})),
    ("a request that is a list", entry(request=[])),
    ("a timing that is text", entry(timings={"send": "soon"})),
    ("a date that is not one", entry(startedDateTime="yesterday")),
    ("a client port out of range", entry(_clientPort=99_999_999)),
    ("a client port that is text", entry(_clientPort="http")),
    ("a url with a bad port", entry(request={**GOOD_ENTRY["request"], "url": "http://a:x/"})),
    ("content that is a list", entry(response={**GOOD_ENTRY["response"], "content": []})),
]


@pytest.mark.parametrize(("case", "bad"), BAD_ENTRIES, ids=[c for c, _ in BAD_ENTRIES])
def test_a_malformed_har_entry_is_named_in_one_sentence(
    tmp_path: Path, case: str, bad: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_har(tmp_path / "bad.har", [GOOD_ENTRY, GOOD_ENTRY, bad])
    assert main(["open", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("podtap: bad.har: log.entries[2] ")
    assert "Traceback" not in err


def test_a_failure_after_the_first_batch_ends_the_session_with_its_sentence(
    tmp_path: Path,
) -> None:
    import asyncio

    path = write_har(tmp_path / "late.har", [GOOD_ENTRY] * 300 + [entry(timings=[])])
    session = RecordingSession(path)
    session.read_start()  # the start of the file is fine: the app would open

    async def drain() -> None:
        async for _batch in session.updates():
            pass

    with pytest.raises(UserError, match=r"late\.har: log\.entries\[300\] cannot be read"):
        asyncio.run(drain())
    assert session.failure is not None
    assert "log.entries[300]" in session.failure


def test_a_bad_jsonl_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    with path.open("wb") as stream:
        JsonLinesWriter(stream, RecordingHeader(podtap="t", target="t", ports=[])).write(
            shop_updates()[:5]
        )
    bad_line = len(path.read_bytes().splitlines()) + 1
    with path.open("ab") as stream:
        stream.write(b'{"type": "data", "conn": "x"}\n')
    assert main(["open", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"podtap: bad.jsonl line {bad_line} is not a podtap event")
    assert err.count("\n") == 1


def test_a_jsonl_time_of_1e20_is_clamped_and_shows_and_writes(tmp_path: Path) -> None:
    path = tmp_path / "future.jsonl"
    updates = shop_updates()
    with path.open("wb") as stream:
        JsonLinesWriter(stream).write(updates)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b'"ts":', b'"ts":1e20,"_":', 1)
    lines[6] = lines[6].replace(b'"ts":', b'"ts":-1e20,"_":', 1)
    path.write_bytes(b"".join(lines))
    read = list(read_updates(path))
    times = [u.event.ts for u in read if isinstance(u, AgentEvent)]
    assert max(times) == LATEST
    assert min(times) == 0.0
    store = Store()
    store.apply(read)
    for conn in store.connections.values():
        clock_time(conn.opened)
        for ex in conn.exchanges:
            clock_time(ex.started)
    view = [(conn, store.visible_exchanges(conn.key)) for conn in store.connections.values()]
    header = RecordingHeader(podtap="t", target="t", ports=[])
    write_view(tmp_path / "again.har", view, header)
    write_view(tmp_path / "again.jsonl", view, header)


def test_a_har_date_in_year_9999_is_clamped(tmp_path: Path) -> None:
    path = write_har(
        tmp_path / "far.har",
        [entry(startedDateTime="9999-12-31T23:59:59Z", timings={"send": 1e300, "wait": -5})],
    )
    times = [u.event.ts for u in read_updates(path) if isinstance(u, AgentEvent)]
    assert max(times) <= LATEST + 86_400 * 2


def good_pcap(path: Path) -> Path:
    flow = Ether() / IP(src="10.0.0.1", dst="10.0.0.2")
    wrpcap(
        str(path),
        [
            flow / TCP(sport=40000, dport=80, flags="S", seq=1),
            flow / TCP(sport=40000, dport=80, flags="A", seq=2) / Raw(b"GET / HTTP/1.1\r\n\r\n"),
        ],
    )
    return path


def test_a_pcap_time_past_2100_is_clamped(tmp_path: Path) -> None:
    path = good_pcap(tmp_path / "late.pcap")
    data = bytearray(path.read_bytes())
    data[24:28] = struct.pack("<I", 0xFFFFFFFF)  # the first packet's seconds: year 2106
    path.write_bytes(data)
    events = [u.event for u in read_updates(path) if isinstance(u, AgentEvent)]
    assert all(event.ts <= LATEST for event in events)
    assert any(isinstance(event, DataReceived) for event in events)


def test_a_damaged_capture_is_read_or_refused_in_one_sentence(tmp_path: Path) -> None:
    base = good_pcap(tmp_path / "base.pcap").read_bytes()
    damaged = tmp_path / "damaged.pcap"
    for seed in range(150):
        rng = random.Random(seed)
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        damaged.write_bytes(data)
        sentence = ""
        try:
            list(read_updates(damaged))
        except UserError as error:
            sentence = str(error)
        assert "\n" not in sentence


def test_a_file_that_is_not_a_capture_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "noise.pcap"
    path.write_bytes(bytes(range(256)))
    assert main(["open", str(path)]) == 1
    assert capsys.readouterr().err.startswith(f"podtap: {path} is not a pcap or pcapng file")


def test_an_error_naming_a_hostile_file_name_is_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "\x1b]0;pwned\x07.har"
    assert main(["open", str(path)]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "\\x1b]0;pwned\\x07.har does not exist" in err


def test_a_pcap_port_with_no_connection_names_the_ports_it_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = good_pcap(tmp_path / "web.pcap")
    assert main(["open", str(path), "-p", "8080"]) == 1
    assert capsys.readouterr().err == (
        "podtap: web.pcap holds no connection to port 8080; its clients connect to 80: "
        "open it with -p 80, or without -p.\n"
    )


@pytest.mark.parametrize("suffix", ["jsonl", "har"])
def test_a_port_given_for_a_recording_is_refused_not_ignored(
    suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"shop.{suffix}"
    if suffix == "har":
        write_har(path, [GOOD_ENTRY])
    else:
        with path.open("wb") as stream:
            JsonLinesWriter(stream).write(shop_updates())
    assert main(["open", str(path), "-p", "80"]) == 1
    assert capsys.readouterr().err == (
        f"podtap: -p applies to pcap files only (shop.{suffix} holds what its recording "
        "captured): to see port 80 alone, open it without -p and filter with ~dst :80.\n"
    )


def test_a_directory_named_like_a_recording_is_called_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "captures.jsonl"
    directory.mkdir()
    assert main(["open", str(directory)]) == 1
    err = capsys.readouterr().err
    assert err == f"podtap: {directory} is a directory: give the recording file in it.\n"


def test_a_last_line_cut_short_is_left_out_and_said(tmp_path: Path) -> None:
    """podtap stopped mid-write: every whole line is read, and the note says what was not."""
    path = tmp_path / "cut.jsonl"
    with path.open("wb") as stream:
        JsonLinesWriter(stream, RecordingHeader(podtap="t", target="t", ports=[])).write(
            shop_updates()
        )
    lines = len(path.read_bytes().splitlines())
    with path.open("ab") as stream:
        stream.write(b'{"type": "data", "conn": 3, "dir')
    updates = list(read_updates(path))
    events = [u for u in updates if isinstance(u, AgentEvent)]
    assert len(events) == sum(isinstance(u, AgentEvent) for u in shop_updates())
    notes = [u.text for u in updates if isinstance(u, SessionNote)]
    assert notes == [
        f"cut.jsonl: its last line (line {lines + 1}, 32 bytes) is cut short, as when podtap "
        "stops mid-write, and is left out"
    ]


def test_a_whole_recording_reads_without_a_note(tmp_path: Path) -> None:
    path = tmp_path / "whole.jsonl"
    with path.open("wb") as stream:
        JsonLinesWriter(stream, RecordingHeader(podtap="t", target="t", ports=[])).write(
            shop_updates()
        )
    assert not any(isinstance(u, SessionNote) for u in read_updates(path))


def test_a_file_whose_only_line_is_no_event_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No newline, but nothing before it either: not a recording cut short, but none at all."""
    path = tmp_path / "b.jsonl"
    path.write_bytes(b"\x00\xff")
    assert main(["open", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("podtap: b.jsonl line 1 is not a podtap event")
    assert err.count("\n") == 1
