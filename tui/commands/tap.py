"""`podtap tap TARGET -p PORT` (also plain `podtap TARGET`): the full-screen app on a target."""

from __future__ import annotations

import argparse

from tui.commands.targeting import add_target_arguments, open_session, store_options


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "tap",
        help="open the live view of a target's connections and HTTP traffic",
        description="Open the live view of the connections and HTTP traffic reaching TARGET.",
    )
    add_target_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `podtap dump` and friends never pay for loading Textual.
    from tui.model.store import Store
    from tui.views.app import run_app

    session = open_session(args)
    run_app(session, title=f"podtap {args.target}", store=Store(**store_options(args)))
    return 0
