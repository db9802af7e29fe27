"""``podtap agent`` (also ``python -m agent``): capture a namespace and serve its events.

Once capture is open and the server listens, the agent prints one JSON line to stdout,
``{"listening": "127.0.0.1:PORT", "agent_id": "...", "interfaces": [...]}``, and from then on
writes only logs, to stderr. It exits 0 on SIGTERM/SIGINT/SIGHUP or when a client timeout
passes, 2 with one sentence (``podtap agent: ...``) on a user error, 1 if capture fails.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

from agent import __version__
from agent.budget import Buffers, buffers_for, cgroup_memory_limit
from agent.capture import NEW_FANOUT_GROUP, Capture
from agent.errors import UserError
from agent.journal import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, Journal
from agent.lifecycle import Timeouts, wait_until_unwanted
from agent.netns import (
    NamespaceRef,
    container_namespace,
    host_namespace,
    named_namespace,
    pid_namespace,
)
from agent.node import NodeSniffer
from agent.requests import AnyRequest
from agent.ring_reassembly import RingReassembler
from agent.server import AgentInfo, EventServer, RequestHandler
from agent.sniffer import Sniffer
from agent.wire import TOKEN_ENV
from agent.workers import CaptureWorkers, default_worker_count

WORKERS_ENV = "PODTAP_AGENT_WORKERS"
MAX_WORKERS = 64

log = logging.getLogger("agent")

EXIT_USER_ERROR = 2
EXIT_CAPTURE_FAILED = 1


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are user errors too: one sentence, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"podtap agent: {message} (see podtap agent --help)\n")
        sys.exit(EXIT_USER_ERROR)


def build_parser() -> _Parser:
    parser = _Parser(
        prog="podtap agent",
        description="Capture TCP traffic to PORTs in a network namespace and stream it to "
        "podtap clients over a websocket.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--pid", type=int, help="the network namespace of this process")
    target.add_argument("--netns", metavar="NAME_OR_PATH", help="an `ip netns` name or a path")
    target.add_argument("--container-id", metavar="ID", help="a container running on this host")
    target.add_argument("--host", action="store_true", help="the agent's own namespace")
    target.add_argument(
        "--node", metavar="NAME",
        help="a node agent named NAME: taps the pods its client asks for (protocol 2)",
    )  # fmt: skip
    parser.add_argument(
        "-p", "--port", type=int, action="append", required=True, dest="ports", metavar="PORT",
        help="a server port to watch (repeat for more)",
    )  # fmt: skip
    parser.add_argument(
        "--listen", default="127.0.0.1:0", metavar="HOST:PORT",
        help="where clients connect (default 127.0.0.1:0, any free port)",
    )  # fmt: skip
    parser.add_argument(
        "--token", help=f"require 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV})"
    )
    parser.add_argument(
        "--first-client-timeout", type=float, default=60.0, metavar="SECONDS",
        help="exit if no client connected by then (0: wait forever; default 60)",
    )  # fmt: skip
    parser.add_argument(
        "--idle-timeout", type=float, default=30.0, metavar="SECONDS",
        help="exit this long after the last client left (0: never; default 30)",
    )  # fmt: skip
    parser.add_argument(
        "--journal-events", type=int, default=DEFAULT_MAX_EVENTS, metavar="N",
        help=f"events kept for clients that fall behind or reconnect ({DEFAULT_MAX_EVENTS})",
    )  # fmt: skip
    parser.add_argument(
        "--journal-bytes", type=int, default=None, metavar="N",
        help="bytes of captured data kept likewise (default: a quarter of the cgroup's memory "
        f"limit, at most {DEFAULT_MAX_BYTES})",
    )  # fmt: skip
    parser.add_argument(
        "--workers", metavar="N", default=os.environ.get(WORKERS_ENV, "auto"),
        help="capture processes sharing the traffic by connection (default: "
        f"${WORKERS_ENV} or auto, {default_worker_count()} here; 1: capture in the agent itself)",
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"podtap agent {__version__}")
    return parser


@dataclass(frozen=True)
class AgentOptions:
    """The command line, checked."""

    namespace: NamespaceRef
    target: str
    ports: tuple[int, ...]
    listen_host: str
    listen_port: int
    token: str | None
    timeouts: Timeouts
    journal_events: int
    journal_bytes: int
    workers: int = 1
    buffers: Buffers = field(default_factory=lambda: buffers_for(None, node=False))
    node: bool = False


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT``; raises UserError."""
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UserError(
            f"--listen {text!r} is not HOST:PORT (for example 127.0.0.1:0 or [::1]:47000)."
        )
    return host, int(port_text)


def check_options(args: argparse.Namespace) -> AgentOptions:
    """Raises UserError for anything wrong that the parser cannot see."""
    for port in args.ports:
        if not 1 <= port <= 65535:
            raise UserError(f"Port {port} is out of range; give ports between 1 and 65535.")
    limits = {"--journal-events": args.journal_events, "--journal-bytes": args.journal_bytes}
    for flag, value in limits.items():
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1.")
    workers = parse_workers(args.workers)
    host, port = parse_listen(args.listen)
    token = (args.token if args.token is not None else os.environ.get(TOKEN_ENV)) or None
    if token is None and not is_loopback(host):
        raise UserError(
            f"--listen {args.listen} lets other machines connect, and without a token anyone "
            f"could read the traffic: give --token (or ${TOKEN_ENV}), or listen on 127.0.0.1."
        )
    namespace, target = resolve_target(args)
    node = args.node is not None
    buffers = buffers_for(cgroup_memory_limit(), node=node)
    return AgentOptions(
        namespace=namespace,
        target=target,
        ports=tuple(sorted(set(args.ports))),
        listen_host=host,
        listen_port=port,
        token=token,
        timeouts=Timeouts(
            first_client=args.first_client_timeout or None,
            idle=args.idle_timeout or None,
        ),
        journal_events=args.journal_events,
        journal_bytes=args.journal_bytes or buffers.journal_bytes,
        # A node agent follows every pod in one thread: workers would split one pod's traffic.
        workers=1 if node else workers,
        buffers=buffers,
        node=node,
    )


def is_loopback(host: str) -> bool:
    """Only this machine can reach ``host``: a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_workers(text: str) -> int:
    """``auto`` or a count from 1 to MAX_WORKERS; raises UserError."""
    if text == "auto":
        return default_worker_count()
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise UserError(
            f"--workers {text!r} is not a count of capture processes; "
            f"give 'auto' or a number from 1 to {MAX_WORKERS}."
        )
    return int(text)


def resolve_target(args: argparse.Namespace) -> tuple[NamespaceRef, str]:
    """The namespace to capture, and how ``Hello`` names it (the client's target grammar)."""
    if args.pid is not None:
        return pid_namespace(args.pid), f"pid/{args.pid}"
    if args.netns is not None:
        return named_namespace(args.netns), f"netns/{args.netns}"
    if args.container_id is not None:
        return container_namespace(args.container_id), f"container/{args.container_id}"
    if args.node is not None:
        # Each tapped pod has its own namespace; the agent's own serves only as a placeholder.
        return host_namespace(), f"node/{args.node}"
    return host_namespace(), "host"


YOUNG_COLLECTION_THRESHOLD = 50_000
"""Allocations between two passes of the cyclic collector over its youngest generation
(CPython's default is 700). One capture read makes a tuple per frame, up to tens of thousands,
all freed by reference counting once the batch is journaled: at 700 the collector walked each of
them, several passes per read, for nothing (about a tenth of the agent's CPU under a flood)."""


def raise_young_collection_threshold() -> None:
    """Apply YOUNG_COLLECTION_THRESHOLD to this process (and the capture workers it forks)."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, oldest)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("agent.server.websockets").setLevel(logging.WARNING)
    raise_young_collection_threshold()
    try:
        options = check_options(args)
        return run(options)
    except UserError as error:
        sys.stderr.write(f"podtap agent: {error}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # before the loop took over SIGINT: nothing to clean up
        return 0


class CaptureRunner(Protocol):
    """What serve() needs of the capture side: agent.sniffer.Sniffer or
    agent.workers.CaptureWorkers, already feeding the journal."""

    failure: BaseException | None

    def stop(self, timeout: float = ...) -> None: ...


FailureCallback = Callable[[BaseException], None]
StartCapture = Callable[[Journal, FailureCallback], CaptureRunner]


def run(options: AgentOptions) -> int:
    if options.node:
        return asyncio.run(serve(options, _on_node(options), []))
    if options.workers == 1:
        capture = Capture(
            options.namespace,
            options.ports,
            block_size=options.buffers.block_size,
            block_count=options.buffers.block_count,
        )
        with capture:
            return asyncio.run(
                serve(options, _in_process(capture, options.ports), list(capture.interfaces))
            )
    # Forked before the event loop or any thread exists, as forking needs.
    group: int | None = NEW_FANOUT_GROUP
    # Each worker gets about 1/N of the traffic, so 1/N of the ring rides out as long a stall:
    # the agent holds as much kernel memory as with one process.
    blocks = max(4, options.buffers.block_count // options.workers)
    captures: list[Capture] = []
    try:
        for _ in range(options.workers):
            capture = Capture(
                options.namespace,
                options.ports,
                block_size=options.buffers.block_size,
                block_count=blocks,
                fanout_group=group,
            )
            captures.append(capture)
            group = capture.fanout_group
    except BaseException:
        for capture in captures:
            capture.close()
        raise
    interfaces = list(captures[0].interfaces)
    workers = CaptureWorkers(captures, frozenset(options.ports))
    try:
        return asyncio.run(serve(options, _with_workers(workers), interfaces))
    finally:
        workers.stop()


def _in_process(capture: Capture, ports: Sequence[int]) -> StartCapture:
    def start(journal: Journal, on_failure: FailureCallback) -> CaptureRunner:
        reassembler = RingReassembler(frozenset(ports))
        sniffer = Sniffer(capture, reassembler, journal, on_failure=on_failure)
        sniffer.start()
        return sniffer

    return start


def _on_node(options: AgentOptions) -> StartCapture:
    def start(journal: Journal, on_failure: FailureCallback) -> CaptureRunner:
        sniffer = NodeSniffer(
            journal, frozenset(options.ports), options.buffers, on_failure=on_failure
        )
        sniffer.start()
        return sniffer

    return start


def _with_workers(workers: CaptureWorkers) -> StartCapture:
    def start(journal: Journal, on_failure: FailureCallback) -> CaptureRunner:
        workers.start(journal, on_failure)
        return workers

    return start


async def serve(options: AgentOptions, start_capture: StartCapture, interfaces: list[str]) -> int:
    """Capture and serve until a signal, a client timeout or a capture failure."""
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    stopped: asyncio.Future[str] = loop.create_future()

    def stop(reason: str) -> None:
        if not stopped.done():
            stopped.set_result(reason)

    # SIGHUP too: an agent started from a terminal that closes should still stop cleanly.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, stop, f"received {signal.Signals(signum).name}")

    journal = Journal(options.journal_events, options.journal_bytes)
    info = AgentInfo(
        agent_id=secrets.token_hex(6),
        version=__version__,
        target=options.target,
        ports=options.ports,
        interfaces=tuple(interfaces),
    )
    runner: list[CaptureRunner] = []
    capturing = asyncio.Event()

    async def on_request(request: AnyRequest) -> None:
        await capturing.wait()  # a client may ask before the capture thread runs
        node = runner[0]
        if isinstance(node, NodeSniffer):
            await asyncio.to_thread(node.handle, request)

    handler: RequestHandler | None = on_request if options.node else None
    server = EventServer(journal, info, options.token, on_request=handler)
    try:
        host, port = await server.start(options.listen_host, options.listen_port)
    except OSError as error:
        raise UserError(
            f"Cannot listen on {options.listen_host}:{options.listen_port} ({error.strerror}); "
            "choose another --listen address."
        ) from None

    def capture_failed(error: BaseException) -> None:  # called in the capture thread
        loop.call_soon_threadsafe(stop, f"capture failed: {error}")

    sniffer = start_capture(journal, capture_failed)
    runner.append(sniffer)
    capturing.set()
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    announcement = {"listening": address, "agent_id": info.agent_id, "interfaces": interfaces}
    sys.stdout.write(json.dumps(announcement) + "\n")
    sys.stdout.flush()
    log.info("capturing %s ports %s; listening on %s", info.target, list(info.ports), address)

    unwanted = asyncio.create_task(
        wait_until_unwanted(server.presence, options.timeouts, started_at)
    )
    unwanted.add_done_callback(lambda task: None if task.cancelled() else stop(task.result()))
    try:
        reason = await stopped
    finally:
        unwanted.cancel()
    log.info("stopping: %s", reason)
    # The last events (connections closed for "shutdown", final Stats) are journaled by the
    # capture thread as it stops; clients get a moment to receive them before the close.
    await asyncio.to_thread(sniffer.stop)
    await server.stop(flush_timeout=1.0)
    if isinstance(sniffer.failure, UserError):
        sys.stderr.write(f"podtap agent: {sniffer.failure}\n")
    return EXIT_CAPTURE_FAILED if sniffer.failure is not None else 0
