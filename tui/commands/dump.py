"""``podtap dump TARGET -p PORT...``: print what reaches the target, as ``mirrord dump`` does.

Traffic goes to stdout (mirrord's text, or JSON lines), everything about the capture itself
(starting, listening, reconnecting, failures) to stderr, so that ``podtap dump ... > file`` keeps
only traffic. Ctrl+C, SIGTERM and SIGHUP stop the capture and the agents cleanly, with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import BinaryIO, Protocol, TextIO

from agent import __version__
from agent.errors import UserError
from agent.events import AnyEvent, EventsLost, Hello, Stats
from tui.commands.targeting import add_target_arguments, open_session, store_options
from tui.model.loss import LOST_REASON_WORDS, LossTally
from tui.output.jsonl import JsonLinesWriter, RecordingHeader
from tui.output.text import ExchangeTextFormatter, ExchangeWriter, TextFormatter, TextWriter
from tui.sources.session import AgentEvent, SessionNote, SourceStatus, Update
from tui.targets import KubeTarget

LISTENING = "Listening for traffic... Press Ctrl+C to stop"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "dump",
        help="print the traffic that reaches a target, as mirrord dump does",
        description="Print every connection and the bytes it carries to the target's ports "
        "(stdout); status goes to stderr.",
    )
    add_target_arguments(parser)
    parser.add_argument(
        "--responses", action="store_true",
        help="also print what the target sends back",
    )
    parser.add_argument(
        "--http", action="store_true",
        help="print decoded HTTP requests and responses (headers, status, latency) "
        "instead of raw bytes",
    )
    parser.add_argument(
        "--reveal", action="store_true",
        help="with --http: print Authorization, Cookie and other secret header values as "
        "sent (masked by default)",
    )
    parser.add_argument(
        "--format", choices=("text", "jsonl"), default="text",
        help="text: mirrord dump's lines (default); jsonl: a header line, then one event per "
        "line, both directions, with the agent it came from (what podtap record writes to "
        "FILE.jsonl, raw bytes and secrets included; podtap open reads it)",
    )
    parser.set_defaults(run=run)


class UpdateWriter(Protocol):
    def write(self, updates: Sequence[Update]) -> None: ...


def make_writer(args: argparse.Namespace, stdout: BinaryIO) -> UpdateWriter:
    if args.format == "jsonl":
        if args.http:
            raise UserError("--http prints text: leave out --format jsonl, or --http.")
        header = RecordingHeader(podtap=__version__, target=str(args.target),
                                 ports=list(args.ports))
        return JsonLinesWriter(stdout, header)
    several_pods = isinstance(args.target, KubeTarget) and args.target.kind != "pod"
    if args.http:
        from tui.model.store import Store

        formatter = ExchangeTextFormatter(show_source=several_pods, reveal=args.reveal)
        return ExchangeWriter(stdout, formatter, Store(**store_options(args)))
    return TextWriter(stdout, TextFormatter(responses=args.responses, show_source=several_pods))


class StatusReporter:
    """Says on stderr what happens to the capture: once live, reconnections, failures, and
    every loss as it happens (``losses`` keeps the totals for the summary at exit)."""

    LOSS_LINE_INTERVAL = 1.0
    """Seconds of capture time between two lines about lost events: a client that keeps
    falling behind gets a line a second, not one per notice."""

    def __init__(self, stderr: TextIO) -> None:
        self._stderr = stderr
        self._listening = False
        self.losses = LossTally()
        self._events_said: dict[str, tuple[float, int]] = {}  # source: (ts, count) last said
        self._events_unsaid: dict[str, dict[str, int]] = {}
        self.failure: str | None = None

    def report(self, updates: Sequence[Update]) -> None:
        for update in updates:
            if isinstance(update, AgentEvent):
                self._event(update.source, update.event)
            elif isinstance(update, SourceStatus):
                self.losses.observe_status(update)
                self._status(update)
            elif isinstance(update, SessionNote):
                self.say(f"podtap: {update.text}")

    def _event(self, source: str, event: AnyEvent) -> None:
        losses = self.losses
        if isinstance(event, Stats):
            drops_before = losses.kernel_drops_of(source)
            gaps_before = losses.gaps_of(source)
            losses.observe_event(source, event)
            self._drops(source, drops_before)
            self._gaps(source, gaps_before)
            self._events_lost(source, event.ts, force=True)
        elif isinstance(event, EventsLost):
            losses.observe_event(source, event)
            unsaid = self._events_unsaid.setdefault(source, {})
            words = LOST_REASON_WORDS.get(event.reason, event.reason)
            unsaid[words] = unsaid.get(words, 0) + event.count
            self._events_lost(source, event.ts, force=False)
        elif isinstance(event, Hello):
            losses.observe_event(source, event)
            if not self._listening:
                self._listening = True
                self.say(f"* {LISTENING}")

    def _status(self, status: SourceStatus) -> None:
        where = _where(status.source)
        if status.state == "failed":
            self.failure = status.detail
            self.say(f"podtap: {where}{status.detail}")
        elif status.state in ("reconnecting", "gone") or (
            status.state == "live" and self._listening
        ):
            # The first "live" is announced by the Hello that follows it.
            self.say(f"podtap: {where}{status.detail}")

    def _drops(self, source: str, before: int) -> None:
        # Drops lose whole packets; what they carried shows up in the dump as "bytes missing"
        # only where the agent could tell. Say it, so that no loss goes unnoticed.
        total = self.losses.kernel_drops_of(source)
        if total > before:
            self.say(
                f"podtap: {_where(source)}the kernel dropped {total - before} packets "
                f"({total} in all): the capture could not keep up, and what they carried is "
                "missing."
            )

    def _gaps(self, source: str, before: tuple[int, int]) -> None:
        gaps, gap_bytes = self.losses.gaps_of(source)
        if gaps > before[0]:
            self.say(
                f"podtap: {_where(source)}{gaps - before[0]} gaps in TCP streams "
                f"({gap_bytes - before[1]:,} bytes not captured; {gaps} gaps in all): "
                "the exchanges around them are marked incomplete."
            )

    def _events_lost(self, source: str, ts: float, *, force: bool) -> None:
        unsaid = self._events_unsaid.get(source)
        if not unsaid:
            return
        said_at, said_total = self._events_said.get(source, (float("-inf"), 0))
        if not force and ts - said_at < self.LOSS_LINE_INTERVAL:
            return
        count = sum(unsaid.values())
        why = ", ".join(sorted(unsaid))
        total = said_total + count
        self.say(
            f"podtap: {_where(source)}lost ~{count:,} events ({why}; ~{total:,} in all): "
            "what they carried will never reach the output."
        )
        self._events_said[source] = (ts, total)
        unsaid.clear()

    def finish(self) -> None:
        """Say what is still unsaid (the capture ended before the next line was due)."""
        for source in list(self._events_unsaid):
            self._events_lost(source, float("inf"), force=True)

    def say(self, line: str) -> None:
        self._stderr.write(line + "\n")
        self._stderr.flush()


def _where(source: str) -> str:
    return "" if source == "local" else f"[{source}] "


def run(args: argparse.Namespace) -> int:
    return asyncio.run(dump(args, sys.stdout.buffer, sys.stderr))


async def dump(args: argparse.Namespace, stdout: BinaryIO, stderr: TextIO) -> int:
    writer = make_writer(args, stdout)
    reporter = StatusReporter(stderr)
    task = asyncio.current_task()
    assert task is not None
    stop_requested = _on_signals((signal.SIGINT, signal.SIGTERM, signal.SIGHUP), task.cancel)
    session = open_session(args)
    try:
        async with session:
            async for batch in session.updates():
                reporter.report(batch)
                writer.write(batch)
    except asyncio.CancelledError:
        if not stop_requested():
            raise
        task.uncancel()
        say_losses(reporter)
        return 0
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as other Unix tools do.
        _silence_stdout()
        return 0
    say_losses(reporter)
    return 1 if reporter.failure else 0


def say_losses(reporter: StatusReporter) -> None:
    """At exit, the totals of what was lost, if anything was: a loss is never silent."""
    reporter.finish()
    losses = reporter.losses
    # An agent gone was said as it happened, and is the last word when it is the only loss.
    if losses.events or losses.kernel_drops or losses.gaps:
        reporter.say(f"podtap: in all, {losses.summary()}.")


def _on_signals(
    signums: Sequence[signal.Signals], stop: Callable[[], object]
) -> Callable[[], bool]:
    """Call ``stop`` on the first of ``signums``; the returned function tells if one came."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def handle(signum: int) -> None:
        if not received:
            stop()
        received.append(signum)

    for signum in signums:
        loop.add_signal_handler(signum, handle, signum)
    return lambda: bool(received)


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would complain about the broken pipe a second time.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
