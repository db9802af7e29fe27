"""``podtap open FILE``: a recording (.jsonl, .har, .pcap) in the app, as if it were live."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.errors import UserError
from tui.commands.targeting import parse_port_arg
from tui.sources.recording import PCAP_SUFFIXES, check_recording


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "open",
        help="open a recording (.jsonl, .har, .pcap) in the app",
        description="Open FILE in the app with the same panes, filters and header inventory "
        "as a live capture: a .jsonl from podtap record or podtap dump --format jsonl, a .har, "
        "or a .pcap/.pcapng (podtap's, tcpdump's or Wireshark's).",
    )
    parser.add_argument("file", metavar="FILE", help="the recording to open")
    parser.add_argument(
        "-p",
        "--port",
        dest="ports",
        type=parse_port_arg,
        action="append",
        default=[],
        metavar="PORT",
        help="pcap only: the server's TCP port (repeatable; default: the ports clients sent "
        "SYNs to)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    check_recording(path)
    if args.ports and path.suffix.lower() not in PCAP_SUFFIXES:
        # A recording holds the connections it was made with: a -p silently ignored would
        # look like a filter that matched everything.
        first = args.ports[0]
        raise UserError(
            f"-p applies to pcap files only ({path.name} holds what its recording captured): "
            f"to see port {first} alone, open it without -p and filter with ~dst :{first}."
        )
    # Imported here so that a mistyped path is said without loading Textual.
    from tui.sources.recording import RecordingSession
    from tui.views.app import run_app

    session = RecordingSession(path, args.ports)
    session.read_start()  # a malformed start is said here, before the screen is taken
    run_app(session, title=f"podtap {path.name}")
    if session.failure is not None:
        # The app showed it too; say it where scripts look, and fail.
        raise UserError(session.failure)
    return 0
