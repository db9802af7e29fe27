"""``?``: every key of the screen below (from its bindings, so it cannot go stale) and every
filter operator (from the filter module's own table)."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.model.filters import FILTER_HELP
from tui.views.widgets.filter_bar import FilterInput
from tui.views.widgets.live_table import LiveTable


def bindings_of(*owners: type[object]) -> list[Binding]:
    found: list[Binding] = []
    for owner in owners:
        for binding in getattr(owner, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.id:
                found.append(binding)
    return found


def key_label(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    return " ".join(binding.key.split(","))


def keys_table(bindings: list[Binding]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True, min_width=9)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(style="dim")
    for binding in bindings:
        table.add_row(key_label(binding), binding.description, binding.tooltip)
    return table


def filter_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold magenta", no_wrap=True, min_width=9)
    table.add_column()
    for operator, description in FILTER_HELP:
        table.add_row(operator, description)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,question_mark,q",
            "dismiss",
            "Close",
            key_display="esc",
            id="help.close",
            tooltip="Close the help",
        ),
    ]

    def __init__(self, keys: list[Binding], *, with_filters: bool) -> None:
        super().__init__(id="help")
        self.keys = keys
        self.with_filters = with_filters

    def compose(self) -> ComposeResult:
        heading = Text.assemble(("podtap", "bold"), " — keys of this screen")
        parts: list[RenderableType] = [heading, Text(), keys_table(self.keys)]
        if self.with_filters:
            parts += [
                Text(),
                Text("Moving around", style="bold"),
                keys_table(bindings_of(LiveTable)),
                Text(),
                Text("Filter expressions (/)", style="bold"),
                keys_table(bindings_of(FilterInput)),
                filter_table(),
                Text(
                    'Combine with ! & | and ( ); quote values with spaces: ~h "x-user-id: ^alice$"',
                    style="dim",
                ),
            ]
        with VerticalScroll(id="help-body"):
            yield Static(Group(*parts))
