"""``podtap record TARGET -p PORT -o FILE``: the traffic of a target, into a file.

The format follows the file's extension: ``.jsonl`` (every event, lossless, for ``podtap open``),
``.har`` (decoded HTTP exchanges, secrets masked unless ``--reveal``), ``.pcap`` (synthesised
TCP packets for Wireshark/tshark). The file is written as traffic arrives and flushed every
half second; Ctrl+C, SIGTERM, SIGHUP, ``--count`` and ``--duration`` all end it the same way:
the agents stop and the file is finalised, so it is complete and valid whatever ended it.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
from collections.abc import Callable
from typing import TextIO, cast

from agent import __version__
from agent.errors import UserError
from agent.events import Hello
from tui.commands.catch_up import DRAIN_IDLE, DRAIN_LIMIT, CatchUp
from tui.commands.live_capture import StatusReporter, StopOnSignals
from tui.commands.targeting import add_target_arguments, open_session, store_options
from tui.model.recording_progress import Progress
from tui.model.updates import AgentEvent
from tui.model.wording import counted
from tui.output.jsonl import RecordingHeader
from tui.output.recording import Recording, format_of

FLUSH_INTERVAL = 0.5
"""Seconds between flushes: a crash loses at most this much."""

PROGRESS_INTERVAL_PIPE = 5.0
"""Seconds between progress lines when stderr is not a terminal (a log, a pipe)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "record",
        help="record a target's traffic to a .jsonl, .har or .pcap file",
        description="Record the traffic reaching TARGET into FILE, whose extension picks the "
        "format: .jsonl (every event, raw bytes included, for podtap open), .har (HTTP "
        "exchanges for browsers and HAR tools; secrets masked unless --reveal), "
        ".pcap (TCP packets for Wireshark and tshark, raw bytes included). JSONL and pcap "
        "keep secrets as they were sent: they are for replay. FILE is created readable by "
        "you alone, never through a symbolic link, never over an existing file without "
        "--force. Ctrl+C ends the recording and leaves a complete file.",
    )
    add_target_arguments(parser)
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="where to write: FILE.jsonl, FILE.har or FILE.pcap",
    )
    parser.add_argument(
        "--count",
        type=_positive_int,
        metavar="N",
        help="stop after N HTTP exchanges (non-HTTP connections count once each, when they "
        "close); a .jsonl or .pcap recording then decodes HTTP to count them, which costs "
        "several times the CPU of writing the events alone",
    )
    parser.add_argument(
        "--duration", type=_positive_float, metavar="SECONDS", help="stop after SECONDS of capture"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write over FILE if it exists (it is refused otherwise)",
    )
    parser.add_argument(
        "--reveal",
        action="store_true",
        help="keep secrets (credentials in headers, URLs and bodies; see "
        "docs/secrets.md) in a HAR (masked by default)",
    )
    parser.set_defaults(run=run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, not {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, not {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    return asyncio.run(record(args, sys.stderr))


class ProgressLine:
    """What was written and the elapsed time on stderr: rewritten in place on a terminal, a
    line every few seconds otherwise. Exchanges are said only when HTTP is decoded (a HAR,
    ``--count``); otherwise the events written, which is what a raw recording holds."""

    def __init__(self, stderr: TextIO, path: str, clock: Callable[[], float]) -> None:
        self._stderr = stderr
        self._path = path
        self._clock = clock
        self._tty = stderr.isatty()
        self._began: float | None = None
        self._last_line = 0.0
        self._dirty = False

    def start(self) -> None:
        if self._began is None:
            self._began = self._clock()

    @property
    def elapsed(self) -> float:
        return 0.0 if self._began is None else self._clock() - self._began

    def text(self, progress: Progress) -> str:
        written = (
            counted(progress.exchanges, "exchange")
            if progress.decoded
            else counted(progress.events, "event")
        )
        return (
            f"{written}, {counted(progress.connections, 'connection')}, "
            f"{_size(progress.bytes)} in {self.elapsed:.1f} s"
        )

    def show(self, progress: Progress) -> None:
        if self._began is None:
            return
        now = self._clock()
        if self._tty:
            self._stderr.write(f"\r* recording to {self._path}: {self.text(progress)}\x1b[K")
            self._dirty = True
        elif now - self._last_line >= PROGRESS_INTERVAL_PIPE:
            self._stderr.write(f"* recording to {self._path}: {self.text(progress)}\n")
            self._last_line = now
        self._stderr.flush()

    def make_room(self) -> None:
        """Clear the progress line so that another message gets a line of its own."""
        if self._dirty:
            self._stderr.write("\r\x1b[K")
            self._dirty = False

    def end(self, progress: Progress, size: int, losses: str) -> None:
        self.make_room()
        self._stderr.write(
            f"podtap: wrote {self._path} ({_size(size)}): {self.text(progress)}; {losses}\n"
        )
        self._stderr.flush()


def _size(count: int) -> str:
    if count < 1000:
        return f"{count} B"
    value = count / 1000
    unit = "kB"
    for bigger in ("MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:.1f} {unit}"


async def record(args: argparse.Namespace, stderr: TextIO) -> int:
    format_of(args.output)  # a wrong extension is said before any agent starts
    header = RecordingHeader(podtap=__version__, target=str(args.target), ports=list(args.ports))
    progress_line = ProgressLine(stderr, args.output, time.monotonic)
    # StatusReporter only writes and flushes: the wrapper is all the TextIO it needs.
    reporter = StatusReporter(cast(TextIO, _MessagesAboveProgress(stderr, progress_line)))
    loop = asyncio.get_running_loop()
    # Without --count a JSONL or pcap recording does not decode HTTP: it keeps up by counting
    # events only, and a stop cut short estimates what it missed in events too.
    count_exchanges = args.count is not None
    decodes = count_exchanges or format_of(args.output) == "har"
    catch_up = CatchUp(unit="exchanges" if decodes else "events")
    timers: list[asyncio.TimerHandle] = []
    # When the loop last finished writing, a batch or a flush: a flush of a large HAR holds the
    # loop for as long as the idle wait, and batches queued meanwhile are not idleness either.
    last_busy = [loop.time()]

    def begin_drain(reason: str) -> None:
        # Stopping starts with writing what the agents already captured.
        catch_up.ask(time.time())
        reporter.say(
            "podtap: stopping: writing what the agents still hold "
            f"(at most {DRAIN_LIMIT:g} s; Ctrl+C again to stop at once)."
        )
        timers.append(loop.call_later(DRAIN_LIMIT, stopping.stop, "limit"))
        last_busy[0] = loop.time()
        timers.append(loop.call_later(DRAIN_IDLE, stop_when_idle))

    def stop_when_idle() -> None:
        # Measured from the end of the newest write: writing a large batch is not idleness.
        quiet_for = loop.time() - last_busy[0]
        if quiet_for >= DRAIN_IDLE:
            stopping.stop("idle")
        else:
            timers.append(loop.call_later(DRAIN_IDLE - quiet_for, stop_when_idle))

    listening = False
    # The signals are let go before the file is finalised: a late Ctrl+C cannot cut that short.
    with (
        Recording(
            args.output,
            header,
            reveal=args.reveal,
            replace=args.force,
            store_options=store_options(args),
            count_exchanges=count_exchanges,
        ) as recording,
        StopOnSignals(first=begin_drain) as stopping,
    ):
        flusher = asyncio.create_task(_flush_every(recording, progress_line, last_busy))
        session = open_session(args)
        try:
            async with session:
                async for batch in session.updates():
                    reporter.report(batch)
                    recording.write(batch)
                    catch_up.saw(batch, recording.progress.written)
                    last_busy[0] = loop.time()
                    if catch_up.asked_at is not None and catch_up.caught_up():
                        break
                    if not listening and any(
                        isinstance(u, AgentEvent) and isinstance(u.event, Hello) for u in batch
                    ):
                        # Capture is live: --duration and the elapsed time count from here.
                        listening = True
                        progress_line.start()
                        if args.duration is not None:
                            timers.append(loop.call_later(args.duration, stopping.stop, "duration"))
                    if args.count is not None and recording.progress.counted >= args.count:
                        break
        except asyncio.CancelledError:
            if not stopping.requested:
                raise
            stopping.absorb()
            catch_up.stopped_by = stopping.cancelled_by
        except UserError:
            if not listening:
                recording.discard()  # nothing was ever captured: leave no empty file behind
            raise
        finally:
            flusher.cancel()
            for timer in timers:
                timer.cancel()
        unwritten = catch_up.unwritten()
        if unwritten:
            reporter.say(f"podtap: {unwritten}")
            recording.note_unwritten(unwritten)
        left_out = recording.left_out()
        if left_out:
            reporter.say(f"podtap: {left_out}")
        reporter.finish()
    progress_line.end(recording.progress, recording.size, reporter.losses.summary())
    return 1 if reporter.failure else 0


class _MessagesAboveProgress(io.TextIOBase):
    """stderr for status messages: each clears the progress line before it is written."""

    def __init__(self, stderr: TextIO, progress_line: ProgressLine) -> None:
        self._stderr = stderr
        self._progress_line = progress_line

    def write(self, text: str) -> int:
        self._progress_line.make_room()
        return self._stderr.write(text)

    def flush(self) -> None:
        self._stderr.flush()


async def _flush_every(
    recording: Recording, progress_line: ProgressLine, last_busy: list[float]
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(FLUSH_INTERVAL)
        recording.flush()
        last_busy[0] = loop.time()
        progress_line.show(recording.progress)
