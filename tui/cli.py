"""``podtap``: the one command. ``podtap TARGET`` opens the app; subcommands do the rest."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from agent import __version__
from agent.errors import UserError
from tui.model.terminal_text import terminal_safe

Command = Callable[[argparse.Namespace], int]

SUBCOMMANDS = ("tap", "dump", "record", "open", "demo", "clean", "agent")


def build_parser() -> argparse.ArgumentParser:
    from tui.commands import clean, demo, dump, open_file, record, tap

    parser = argparse.ArgumentParser(
        prog="podtap",
        description="See the connections and HTTP traffic that reach a workload, live.",
        epilog="podtap TARGET is short for podtap tap TARGET.",
    )
    parser.add_argument("--version", action="version", version=f"podtap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (tap, dump, record, open_file, demo, clean):
        module.register(sub)
    sub.add_parser("agent", help="run the sniffer agent (see podtap agent --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "agent":
        from agent.cli import main as agent_main

        return agent_main(args_list[1:])
    if args_list and not args_list[0].startswith("-") and args_list[0] not in SUBCOMMANDS:
        args_list.insert(0, "tap")
    parser = build_parser()
    args = parser.parse_args(args_list)
    run: Command | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        return run(args)
    except UserError as error:
        # A sentence may quote a file or an agent: escape what could drive the terminal.
        print(f"podtap: {terminal_safe(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
