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
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import BinaryIO, Protocol, TextIO

from agent import __version__
from agent.errors import UserError
from tui.commands.live_capture import StatusReporter, StopOnSignals
from tui.commands.targeting import add_target_arguments, open_session, store_options
from tui.model.updates import Update
from tui.output.exchange_text import ExchangeTextFormatter, ExchangeWriter
from tui.output.jsonl import JsonLinesWriter, RecordingHeader
from tui.output.stats import EndpointStatsWriter
from tui.output.text import TextFormatter, TextWriter
from tui.targets import KubeTarget


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "dump",
        help="print the traffic that reaches a target, as mirrord dump does",
        description="Print every connection and the bytes it carries to the target's ports "
        "(stdout); status goes to stderr.",
    )
    add_target_arguments(parser)
    parser.add_argument(
        "--responses",
        action="store_true",
        help="also print what the target sends back",
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="print decoded HTTP requests and responses (headers, status, latency) "
        "instead of raw bytes",
    )
    parser.add_argument(
        "--reveal",
        action="store_true",
        help="with --http: print secrets (credentials in headers and URLs; see "
        "docs/secrets.md) as sent (masked by default)",
    )
    parser.add_argument(
        "--format",
        choices=("text", "jsonl"),
        default="text",
        help="text: mirrord dump's lines (default); jsonl: a header line, then one event per "
        "line, both directions, with the agent it came from (what podtap record writes to "
        "FILE.jsonl, raw bytes and secrets included; podtap open reads it)",
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="instead of the traffic, print a table of endpoints (method, route template, "
        "requests, rate, 4xx, 5xx, p50/p95/p99 latency) when the capture stops",
    )
    parser.add_argument(
        "--stats-interval",
        type=_seconds,
        metavar="N",
        default=None,
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
    # Read with defaults: callers that build the arguments by hand need not know of --stats.
    if getattr(args, "stats", False) or getattr(args, "stats_interval", None):
        if args.format == "jsonl" or args.http or args.responses:
            raise UserError(
                "--stats prints a table instead of the traffic: leave out "
                "--format, --http and --responses."
            )
        return EndpointStatsWriter(stdout, time.time)
    if args.format == "jsonl":
        if args.http:
            raise UserError("--http prints text: leave out --format jsonl, or --http.")
        header = RecordingHeader(
            podtap=__version__, target=str(args.target), ports=list(args.ports)
        )
        return JsonLinesWriter(stdout, header)
    several_pods = isinstance(args.target, KubeTarget) and args.target.kind != "pod"
    if args.http:
        from tui.model.store import Store

        formatter = ExchangeTextFormatter(show_source=several_pods, reveal=args.reveal)
        return ExchangeWriter(stdout, formatter, Store(**store_options(args)))
    # On a terminal, bytes from the network could drive it (clipboard, title, hidden text).
    escape = stdout.isatty()
    text = TextFormatter(responses=args.responses, show_source=several_pods, escape=escape)
    return TextWriter(stdout, text)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(dump(args, sys.stdout.buffer, sys.stderr))


async def dump(args: argparse.Namespace, stdout: BinaryIO, stderr: TextIO) -> int:
    writer = make_writer(args, stdout)
    reporter = StatusReporter(stderr)
    session = open_session(args)
    stats = writer if isinstance(writer, EndpointStatsWriter) else None
    with StopOnSignals() as stopping:
        try:
            interval = getattr(args, "stats_interval", None)
            async with session, _printing_every(stats, interval):
                async for batch in session.updates():
                    reporter.report(batch)
                    writer.write(batch)
            status = 1 if reporter.failure else 0
        except asyncio.CancelledError:
            if not stopping.requested:
                raise
            stopping.absorb()
            status = 0
        except BrokenPipeError:
            # The reader went away (``| head``): stop quietly, as other Unix tools do.
            _silence_stdout()
            return 0
    if stats is not None:
        with contextlib.suppress(BrokenPipeError):
            stats.print_table()
    say_losses(reporter)
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


def say_losses(reporter: StatusReporter) -> None:
    """At exit, the totals of what was lost, if anything was: a loss is never silent."""
    reporter.finish()
    losses = reporter.losses
    # An agent gone was said as it happened, and is the last word when it is the only loss.
    if losses.events or losses.kernel_drops or losses.gaps:
        reporter.say(f"podtap: in all, {losses.summary()}.")


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would complain about the broken pipe a second time.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
