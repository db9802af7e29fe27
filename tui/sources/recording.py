"""A recording as a session: a .jsonl, .har or .pcap file read back, its updates yielded in
batches, then the end. The app shows it with the same panes, filters and header inventory as a
live capture.

- ``.jsonl``: what ``podtap record`` or ``podtap dump --format jsonl`` wrote, event for event.
- ``.har``: each entry replayed as HTTP/1.x bytes on its connection (see tui.output.replay).
- ``.pcap``/``.pcapng`` (podtap's, tcpdump's, Wireshark's): reassembled by the agent's own code;
  the server ports are ``ports`` or, when none are given, those that clients sent SYNs to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

from agent.errors import UserError
from agent.events import ConnectionOpened
from tui.model.updates import AgentEvent, SessionNote, SourceStatus, Update

BATCH = 500
"""Updates per batch: large enough to be cheap, small enough for the app to stay responsive."""

PCAP_SUFFIXES = (".pcap", ".pcapng", ".cap")
RECORDING_SUFFIXES = (".jsonl", ".har", *PCAP_SUFFIXES)


def check_recording(path: Path) -> None:
    """Raises UserError unless ``path`` is a file podtap can open."""
    if path.suffix.lower() not in RECORDING_SUFFIXES:
        raise UserError(
            f"{path}: podtap opens .jsonl, .har and .pcap files (the extension tells the format)."
        )
    if path.is_dir():
        raise UserError(f"{path} is a directory: give the recording file in it.")
    if not path.is_file():
        raise UserError(f"{path} does not exist (or is not a file).")


def read_updates(path: Path, ports: Sequence[int] = ()) -> Iterator[Update]:
    """Every update a recording holds: a status per source as it first appears, its events,
    and a note if what it holds ends cut short. Raises UserError for a file that cannot be
    read."""
    check_recording(path)
    suffix = path.suffix.lower()
    seen: set[str] = set()
    try:
        for source, update in _events(path, suffix, ports):
            if isinstance(update, SessionNote):
                yield update
                continue
            if source not in seen:
                seen.add(source)
                yield SourceStatus(source, "live", f"read from {path.name}")
            yield update
    except OSError as error:
        # Most often a recording root wrote (0600) opened by another user.
        raise UserError(f"cannot read {path}: {error.strerror or error}.") from None


def _events(path: Path, suffix: str, ports: Sequence[int]) -> Iterator[tuple[str, Update]]:
    if suffix == ".jsonl":
        from tui.output.jsonl import LastLineCutShort, read_lines

        with path.open("rb") as lines:
            for item in read_lines(lines, path.name):
                if isinstance(item, AgentEvent):
                    yield item.source, item
                elif isinstance(item, LastLineCutShort):
                    yield "", SessionNote(item.sentence(path.name))
    elif suffix == ".har":
        from tui.output.har_reading import read_har

        for source, event in read_har(path.read_bytes(), path.name):
            yield source, AgentEvent(source, event)
    else:
        from tui.output.pcap_reading import guess_server_ports, read_pcap

        server_ports = list(ports) or guess_server_ports(str(path))
        if not server_ports:
            raise UserError(f"{path.name} holds no TCP connection podtap can follow.")
        followed = False
        for event in read_pcap(str(path), server_ports):
            followed = followed or isinstance(event, ConnectionOpened)
            yield "local", AgentEvent("local", event)
        if ports and not followed:
            # An empty screen would not say that the -p given was the mistake.
            _no_connection_on(path, ports, guess_server_ports(str(path)))


def _no_connection_on(path: Path, ports: Sequence[int], found: Sequence[int]) -> NoReturn:
    asked = ", ".join(map(str, ports))
    if not found:
        raise UserError(f"{path.name} holds no TCP connection podtap can follow.")
    raise UserError(
        f"{path.name} holds no connection to port {asked}; its clients connect to "
        f"{', '.join(map(str, found))}: open it with -p {found[0]}, or without -p."
    )


class RecordingSession:
    """The updates of the recording at ``path``, read in a worker thread, then the end."""

    def __init__(self, path: str | Path, ports: Sequence[int] = ()) -> None:
        self.path = Path(path)
        self.ports = list(ports)
        self.description = self.path.name
        self.failure: str | None = None
        """The sentence that stopped the reading (a malformed entry or line), if one did."""
        self._reading: Iterator[Update] | None = None
        self._first: list[Update] = []

    def read_start(self) -> None:
        """Read the first batch now, so that a file that is no recording fails before the app
        starts (raises UserError with its sentence)."""
        self._reading = read_updates(self.path, self.ports)
        self._first = _next_batch(self._reading)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def updates(self) -> AsyncIterator[Sequence[Update]]:
        reading = self._reading or read_updates(self.path, self.ports)
        if self._first:
            first, self._first = self._first, []
            yield first
        while True:
            try:
                # Reading and decoding a file is blocking work: keep it off the event loop.
                batch = await asyncio.to_thread(_next_batch, reading)
            except UserError as error:
                self.failure = str(error)
                raise
            if not batch:
                return
            yield batch


def _next_batch(reading: Iterator[Update]) -> list[Update]:
    batch: list[Update] = []
    for update in reading:
        batch.append(update)
        if len(batch) >= BATCH:
            break
    return batch
