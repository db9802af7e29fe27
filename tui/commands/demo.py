"""`podtap demo`: podtap on a demo shop with live traffic, in a network namespace of its own."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from types import FrameType

from tui.demo import ClientCall, DemoEnvironment


class _Stopped(Exception):
    """SIGTERM arrived: leave through the environment's cleanup, like Ctrl+C does."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="try podtap on a demo service with live traffic (needs root)",
        description="Start a small shop service in a new network namespace, call it from the "
        "host with several kinds of clients, and open podtap on it. Everything is removed on "
        "exit. Needs root (network namespaces).",
    )
    parser.add_argument(
        "--no-ui",
        action="store_true",
        help="do not open the app; print one line per request the clients make",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop by itself after this many seconds",
    )
    parser.set_defaults(run=run)


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def run(args: argparse.Namespace) -> int:
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        if args.no_ui:
            _run_printing(args.duration)
        else:
            _run_app(args.duration)
    except (_Stopped, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


class _Printer:
    """Prints each call; notes when stdout goes away (``podtap demo --no-ui | head``)."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def __call__(self, call: ClientCall) -> None:
        if self.closed.is_set():
            return
        try:
            print(call.line(), flush=True)
        except BrokenPipeError:
            # Later writes, including the interpreter's final flush, go nowhere instead.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            self.closed.set()


def _announce(demo: DemoEnvironment) -> None:
    kinds = ("HTTP", "cache", "TLS", "gRPC", "HTTP/2 h2c", "WebSocket")
    ports = ", ".join(f"{port} ({kind})" for port, kind in zip(demo.ports, kinds, strict=True))
    print(
        f"podtap demo: shop at {demo.service_ip} in network namespace {demo.name}, ports {ports}. "
        "Press Ctrl+C to stop.",
        file=sys.stderr,
        flush=True,
    )


def _run_printing(duration: float | None) -> None:
    printer = _Printer()
    with DemoEnvironment(on_call=printer) as demo:
        _announce(demo)
        deadline = None if duration is None else time.monotonic() + duration
        while not printer.closed.is_set():
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                break
            time.sleep(left)


def _run_app(duration: float | None) -> None:
    # Imported here: the app loads Textual, which --no-ui never needs.
    from tui.sources.local import LocalSession
    from tui.views.app import require_terminal, run_app

    require_terminal()  # before the demo's namespace and clients are set up for nothing
    with DemoEnvironment() as demo:
        _announce(demo)
        # The app stops on SIGTERM as if the user quit it; the environment then cleans up.
        timer = threading.Timer(duration or 0.0, os.kill, (os.getpid(), signal.SIGTERM))
        timer.daemon = True
        if duration is not None:
            timer.start()
        session = LocalSession(demo.target, demo.ports)
        try:
            run_app(session, title=f"podtap demo ({demo.target})")
        finally:
            timer.cancel()
            # The app's own SIGTERM handling ends with the app; keep ours until cleanup is done.
            signal.signal(signal.SIGTERM, _raise_stopped)
