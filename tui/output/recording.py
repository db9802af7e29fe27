"""A recording file being written: the format chosen by the file's extension, written as
updates arrive, flushed at least every second by its owner, finalised on close.

JSONL and pcap recordings write the events as they come and count them cheaply (events,
connections, bytes: tui.model.recording_progress), so that they keep up with a flood. HTTP is
decoded only where it is needed: a HAR is made of the exchanges, and ``count_exchanges`` (what
``--count`` stops on) decodes them for the other formats too, at several times the cost.
An exchange is written to HAR once it is final (answered, failed, or its connection closed);
until then it is rewritten at every flush, so a HAR on disk always lists every request seen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from agent.errors import UserError
from agent.events import AnyEvent
from tui.model.flows import Connection, Exchange
from tui.model.recording_progress import EventTally, ExchangeTally, recording_store
from tui.model.store import Store, StoreChange
from tui.model.updates import AgentEvent, Update
from tui.model.wording import counted
from tui.output.har import HarFileWriter, har_entry
from tui.output.jsonl import JsonLinesWriter, RecordingHeader
from tui.output.pcap import PcapFileWriter
from tui.output.private_file import open_private

Format = Literal["jsonl", "har", "pcap"]
FORMATS: dict[str, Format] = {".jsonl": "jsonl", ".har": "har", ".pcap": "pcap"}

HAR_BODY_CAP = 1 << 20
"""Body bytes kept per message in a HAR (the true size is always given)."""


def format_of(path: str | Path) -> Format:
    if not str(path).strip():
        raise UserError("Give a file name ending in .jsonl, .har or .pcap (the format follows it).")
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise UserError(
            f"{path}: the file name must end in .jsonl, .har or .pcap (the format follows it)."
        ) from None


class _Sink(Protocol):
    def take(self, updates: Sequence[Update], change: StoreChange | None) -> None:
        """Write ``updates``; ``change`` is what they changed in the store, when HTTP is
        decoded."""

    def flush(self) -> None: ...


class _JsonLinesSink:
    def __init__(self, stream: BinaryIO, header: RecordingHeader) -> None:
        self._writer = JsonLinesWriter(stream, header, flush_each_batch=False)

    def take(self, updates: Sequence[Update], change: StoreChange | None) -> None:
        self._writer.write(updates)

    def flush(self) -> None:
        self._writer.flush()


class _PcapSink:
    def __init__(self, stream: BinaryIO) -> None:
        self._writer = PcapFileWriter(stream)

    def take(self, updates: Sequence[Update], change: StoreChange | None) -> None:
        self._writer.write_updates(updates)

    def write_events(self, source: str, events: Sequence[AnyEvent]) -> None:
        self._writer.write_events(source, events)

    def flush(self) -> None:
        self._writer.flush()

    def left_out(self) -> str:
        return self._writer.left_out()


class _HarSink:
    def __init__(
        self, stream: BinaryIO, store: Store, header: RecordingHeader, reveal: bool
    ) -> None:
        ports = ", ".join(str(port) for port in header.ports)
        self._comment = f"podtap record {header.target}" + (f" on ports {ports}" if ports else "")
        self._writer = HarFileWriter(stream, header.podtap, self._comment)
        self.unwritten = ""
        """What the capture saw but the recording could not write (said when it ends)."""
        self._store = store
        self._reveal = reveal
        # Exchanges not yet final, oldest first, with their connection (which the store may
        # evict before they end: they are written all the same).
        self._pending: dict[Exchange, Connection] = {}

    def take(self, updates: Sequence[Update], change: StoreChange | None) -> None:
        assert change is not None, "a HAR is written from decoded exchanges"
        for exchange in change.new_exchanges:
            connection = self._store.get(exchange.key)
            if connection is not None:
                self._pending[exchange] = connection

    def flush(self) -> None:
        self._writer.comment = self._log_comment()
        still: dict[Exchange, Connection] = {}
        for exchange, connection in self._pending.items():
            if is_final(exchange, connection):
                self._writer.add_final(har_entry(exchange, connection, reveal=self._reveal))
                # Written for good: its bodies (up to HAR_BODY_CAP each) need not stay in memory
                # for as long as the store keeps the exchange.
                exchange.request.body = b""
                if exchange.response is not None:
                    exchange.response.body = b""
            else:
                still[exchange] = connection
        self._pending = still
        self._writer.flush(
            _in_progress(har_entry(exchange, connection, reveal=self._reveal))
            for exchange, connection in still.items()
        )

    def finish(self) -> None:
        """The capture is over: whatever is still waiting is as final as it will get, and
        says so (incomplete, with a comment)."""
        for exchange, connection in self._pending.items():
            exchange.incomplete = True
            exchange.notes.append("the recording ended before this exchange did")
            self._writer.add_final(har_entry(exchange, connection, reveal=self._reveal))
        self._pending = {}
        self._writer.comment = self._log_comment()
        self._writer.flush()

    def _log_comment(self) -> str:
        losses = self._store.losses
        said = [self._comment]
        if losses.anything:
            said.append(losses.summary())
        if self.unwritten:
            said.append(self.unwritten)
        return "; ".join(said)


IN_PROGRESS = "still in progress when the file was written"


def _in_progress(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry rewritten until its exchange is final says so: should podtap be killed before
    it is, the file still does not pass it off as whole."""
    said = entry.get("comment")
    entry["comment"] = f"{said}; {IN_PROGRESS}" if said else IN_PROGRESS
    return entry


def is_final(exchange: Exchange, connection: Connection) -> bool:
    """Whether an exchange will not change any more. A response may end before its request
    does (a server that answers an upload early): the request's bytes still count."""
    if connection.closed is not None or exchange.error is not None:
        return True
    if exchange.upgraded and connection.protocol == "ws":
        return False  # its WebSocket messages keep coming until the connection ends
    return exchange.finished is not None and (
        exchange.request.complete or not exchange.request.method
    )


class Recording:
    """``path`` being written in the format its extension names; use as a context manager
    (closing finalises the file). ``reveal`` keeps secrets in a HAR; ``replace`` writes over
    an existing file (it is refused otherwise); ``count_exchanges`` decodes HTTP to count
    exchanges in a JSONL or pcap recording too (a HAR always does)."""

    def __init__(
        self,
        path: str | Path,
        header: RecordingHeader,
        *,
        reveal: bool = False,
        replace: bool = False,
        store_options: Mapping[str, int] | None = None,
        count_exchanges: bool = False,
    ) -> None:
        self.path = Path(path)
        self.format = format_of(path)
        self._exchanges: ExchangeTally | None = None
        self._events: EventTally | None = None
        if self.format == "har" or count_exchanges:
            body_cap = HAR_BODY_CAP if self.format == "har" else 1024
            self._exchanges = ExchangeTally(recording_store(body_cap, store_options))
            self.progress = self._exchanges.progress
        else:
            self._events = EventTally()
            self.progress = self._events.progress
        self._stream: BinaryIO = open_private(
            self.path, replace=replace, hint=": add --force to replace it"
        )
        self._har: _HarSink | None = None
        self._sink: _Sink
        if self.format == "jsonl":
            self._sink = _JsonLinesSink(self._stream, header)
        elif self.format == "pcap":
            self._sink = _PcapSink(self._stream)
        else:
            assert self._exchanges is not None
            self._har = _HarSink(self._stream, self._exchanges.store, header, reveal)
            self._sink = self._har
        self._closed = False
        self._sink.flush()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def write(self, updates: Sequence[Update]) -> None:
        if self._events is not None:
            self._events.count(updates)
            self._sink.take(updates, None)
        else:
            assert self._exchanges is not None
            self._sink.take(updates, self._exchanges.count(updates))

    def flush(self) -> None:
        self._sink.flush()
        if self._exchanges is not None:
            self._exchanges.forget_abandoned()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._har is not None:
                self._har.finish()
            else:
                self._sink.flush()
            os.fsync(self._stream.fileno())
        finally:
            self._stream.close()

    def left_out(self) -> str:
        """One sentence on what the events written so far hold that the file cannot ("" if
        nothing: only a pcap leaves anything out)."""
        if not isinstance(self._sink, _PcapSink):
            return ""
        what = self._sink.left_out()
        return f"the pcap leaves out {what}; record to .jsonl to keep them." if what else ""

    def note_unwritten(self, sentence: str) -> None:
        """Say in the file, where the format has room for it (HAR's ``log.comment``), what
        the capture saw that the recording could not write."""
        if self._har is not None:
            self._har.unwritten = sentence

    def discard(self) -> None:
        """Close and remove the file (a recording that never started)."""
        self._closed = True
        self._stream.close()
        self.path.unlink(missing_ok=True)

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


@dataclass(frozen=True, slots=True)
class ViewWritten:
    path: Path
    format: Format
    connections: int
    exchanges: int
    left_out: str = ""
    """What the file could not hold (see PcapFileWriter.left_out), "" if nothing."""

    def sentence(self) -> str:
        what = f"{counted(self.exchanges, 'exchange')} on {counted(self.connections, 'connection')}"
        wrote = f"Wrote {what} to {self.path} ({self.format.upper()})"
        if self.left_out:
            return f"{wrote}; it leaves out {self.left_out}: write .jsonl to keep them."
        return f"{wrote}."


def write_view(
    path: str | Path,
    view: Sequence[tuple[Connection, Sequence[Exchange]]],
    header: RecordingHeader,
    *,
    reveal: bool = False,
    replace: bool = False,
) -> ViewWritten:
    """Write decoded connections and exchanges (the app's filtered view) to ``path``.

    HAR is written from the exchanges themselves; JSON lines and pcap from the events that
    replay them (tui.output.replay), so that ``podtap open`` shows the same view again.
    Raises UserError when the path cannot be written, FileExists when it is there and
    ``replace`` is not set.
    """
    from tui.output.har import har_of_view
    from tui.output.replay import ReplayNumbering, connection_events

    target = Path(path).expanduser()
    file_format = format_of(target)
    left_out = ""
    try:
        with open_private(target, replace=replace) as stream:
            if file_format == "har":
                data, _entries = har_of_view(view, header.podtap, reveal=reveal)
                stream.write(data)
            else:
                numbering: dict[str, ReplayNumbering] = {}
                pcap = _PcapSink(stream) if file_format == "pcap" else None
                jsonl = None if pcap else JsonLinesWriter(stream, header, flush_each_batch=False)
                for connection, exchanges in view:
                    numbers = numbering.setdefault(connection.source, ReplayNumbering())
                    events = list(connection_events(connection, exchanges, numbers))
                    if pcap is not None:
                        pcap.write_events(connection.source, events)
                    elif jsonl is not None:
                        jsonl.write([AgentEvent(connection.source, e) for e in events])
                stream.flush()
                if pcap is not None:
                    left_out = pcap.left_out()
    except OSError as error:
        raise UserError(f"cannot write {target}: {error.strerror}.") from None
    written = sum(len(ex) for _c, ex in view)
    return ViewWritten(target, file_format, len(view), written, left_out)
