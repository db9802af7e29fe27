"""``podtap dump TARGET -p PORT...``: print what reaches the target, as ``mirrord dump`` does.

Traffic goes to stdout (mirrord's text, or JSON lines), everything about the capture itself
(starting, listening, reconnecting, failures) to stderr, so that ``podtap dump ... > file`` keeps
only traffic. Ctrl+C, SIGTERM and SIGHUP stop the capture and the agents cleanly, with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import BinaryIO, Protocol, TextIO

from agent import __version__
from agent.errors import UserError
from agent.events import Hello, Stats
from tui.commands.targeting import add_target_arguments, open_session
from tui.output.jsonl import JsonLinesWriter, RecordingHeader
from tui.output.stats import EndpointStatsWriter
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
    parser.add_argument(
        "--stats", action="store_true",
        help="instead of the traffic, print a table of endpoints (method, route template, "
        "requests, rate, 4xx, 5xx, p50/p95/p99 latency) when the capture stops",
    )
    parser.add_argument(
        "--stats-interval", type=_seconds, metavar="N", default=None,
        help="with --stats (implied): also print the table every N seconds",
    )
    parser.set_defaults(run=run)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 86_400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


class UpdateWriter(Protocol):
    def write(self, updates: Sequence[Update]) -> None: ...


def make_writer(args: argparse.Namespace, stdout: BinaryIO) -> UpdateWriter:
    if args.stats or args.stats_interval:
        if args.format == "jsonl" or args.http or args.responses:
            raise UserError("--stats prints a table instead of the traffic: leave out "
                            "--format, --http and --responses.")
        return EndpointStatsWriter(stdout, time.time)
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
        return ExchangeWriter(stdout, formatter, Store())
    return TextWriter(stdout, TextFormatter(responses=args.responses, show_source=several_pods))


class StatusReporter:
    """Says on stderr what happens to the capture: once live, reconnections, failures."""

    def __init__(self, stderr: TextIO) -> None:
        self._stderr = stderr
        self._listening = False
        self._kernel_drops: dict[str, int] = {}
        self._agents: dict[str, str] = {}
        self.failure: str | None = None

    def report(self, updates: Sequence[Update]) -> None:
        for update in updates:
            if isinstance(update, AgentEvent):
                event = update.event
                if isinstance(event, Stats):
                    self._drops(update.source, event.kernel_drops)
                elif isinstance(event, Hello):
                    if self._agents.get(update.source) != event.agent_id:
                        # A new agent counts its drops from zero.
                        self._agents[update.source] = event.agent_id
                        self._kernel_drops[update.source] = 0
                    if not self._listening:
                        self._listening = True
                        self._say(f"* {LISTENING}")
            elif isinstance(update, SourceStatus):
                self._status(update)
            elif isinstance(update, SessionNote):
                self._say(f"podtap: {update.text}")

    def _status(self, status: SourceStatus) -> None:
        where = "" if status.source == "local" else f"[{status.source}] "
        if status.state == "failed":
            self.failure = status.detail
            self._say(f"podtap: {where}{status.detail}")
        elif status.state in ("reconnecting", "gone") or (
            status.state == "live" and self._listening
        ):
            # The first "live" is announced by the Hello that follows it.
            self._say(f"podtap: {where}{status.detail}")

    def _drops(self, source: str, total: int) -> None:
        # Drops lose whole packets; what they carried shows up in the dump as "bytes missing"
        # only where the agent could tell. Say it, so that no loss goes unnoticed.
        before = self._kernel_drops.get(source, 0)
        if total > before:
            where = "" if source == "local" else f"[{source}] "
            self._say(
                f"podtap: {where}the kernel dropped {total - before} packets ({total} in all): "
                "the capture could not keep up, and what they carried is missing."
            )
        self._kernel_drops[source] = total

    def _say(self, line: str) -> None:
        self._stderr.write(line + "\n")
        self._stderr.flush()


def run(args: argparse.Namespace) -> int:
    return asyncio.run(dump(args, sys.stdout.buffer, sys.stderr))


async def dump(args: argparse.Namespace, stdout: BinaryIO, stderr: TextIO) -> int:
    writer = make_writer(args, stdout)
    reporter = StatusReporter(stderr)
    task = asyncio.current_task()
    assert task is not None
    stop_requested = _on_signals((signal.SIGINT, signal.SIGTERM, signal.SIGHUP), task.cancel)
    session = open_session(args)
    stats = writer if isinstance(writer, EndpointStatsWriter) else None
    try:
        async with session, _printing_every(stats, args.stats_interval):
            async for batch in session.updates():
                reporter.report(batch)
                writer.write(batch)
        status = 1 if reporter.failure else 0
    except asyncio.CancelledError:
        if not stop_requested():
            raise
        task.uncancel()
        status = 0
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as other Unix tools do.
        _silence_stdout()
        return 0
    if stats is not None:
        with contextlib.suppress(BrokenPipeError):
            stats.print_table()
    return status


@contextlib.asynccontextmanager
async def _printing_every(
    stats: EndpointStatsWriter | None, interval: float | None
) -> AsyncIterator[None]:
    """Print the stats table every ``interval`` seconds while the body runs."""
    if stats is None or interval is None:
        yield
        return

    async def tick() -> None:
        while True:
            await asyncio.sleep(interval)
            stats.print_table()

    ticker = asyncio.create_task(tick())
    try:
        yield
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker


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
