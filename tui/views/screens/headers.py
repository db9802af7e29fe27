"""The header inventory: every request header seen, ranked by how well it would split traffic
(mirrord ``http_filter.header_filter``), its values with counts, and for the chosen value the
live number of matching requests and the mirrord config that would steal exactly those."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from tui.model.filters import Filter, FilterError, header_value_expression, parse_filter
from tui.model.headers import HeaderStats
from tui.model.secrets import mask
from tui.model.store import Store
from tui.model.terminal_text import one_line, terminal_safe
from tui.views.pending import PendingChanges
from tui.views.screens.panes import PanesScreen
from tui.views.widgets.keys_footer import KeysFooter
from tui.views.widgets.live_table import Cell, Column, LiveTable

HEADER_COLUMNS = (
    Column("header", 14, flexible=True),
    Column("carried", 7, "right"),
    Column("distinct", 8, "right"),
    Column("most frequent", 18),
)

VALUE_COLUMNS = (
    Column("value", 16, flexible=True),
    Column("requests", 8, "right"),
)


@dataclass(frozen=True, slots=True)
class ChosenFilter:
    """The filter the user picked in the inventory: its text and what it parses to."""

    text: str
    parsed: Filter


class HeaderInventoryScreen(PanesScreen[ChosenFilter | None]):
    """Returns (dismisses with) the filter for the chosen header value, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "back",
            "Back",
            key_display="esc",
            id="headers.back",
            tooltip="Back to the connections",
        ),
        Binding(
            "enter",
            "use_as_filter",
            "Use as filter",
            id="headers.use",
            tooltip="Show only requests with this header value",
        ),
        Binding(
            "m",
            "copy_mirrord",
            "Copy mirrord",
            id="headers.copy_mirrord",
            tooltip="Copy the mirrord config that steals requests with this header value",
        ),
        Binding(
            "c",
            "copy_filter",
            "Copy regex",
            id="headers.copy_filter",
            tooltip="Copy the header_filter regex alone",
        ),
        Binding(
            "s",
            "toggle_secrets",
            "Secrets",
            id="headers.secrets",
            tooltip="Reveal or mask the values of secret headers",
        ),
    ]

    REFRESH_EVERY = 0.5
    """Ranking every header is not free; twice a second is live enough for reading."""

    def __init__(self, store: Store) -> None:
        super().__init__(id="headers")
        self.store = store
        self.reveal_secrets = False
        self._since_refresh = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="inventory-tables"):
            yield LiveTable[HeaderStats, str](
                HEADER_COLUMNS,
                self._header_cells,
                lambda stats: stats.name,
                empty_text="no request headers seen yet",
                id="header-names",
            )
            yield LiveTable[tuple[str, int], str](
                VALUE_COLUMNS,
                self._value_cells,
                lambda pair: pair[0],
                empty_text="",
                id="header-values",
            )
        with VerticalScroll(id="inventory-choice"):
            yield Static(id="choice-body")
        yield KeysFooter(compact=True)

    def on_mount(self) -> None:
        self.names.border_title = "request headers, best filter keys first"
        self.values.border_title = "values"
        self.query_one("#inventory-choice").border_title = "mirrord"
        self._reload(names_first=True)
        self.names.focus()

    @property
    def names(self) -> LiveTable[HeaderStats, str]:
        return self.query_one("#header-names", LiveTable)

    @property
    def values(self) -> LiveTable[tuple[str, int], str]:
        return self.query_one("#header-values", LiveTable)

    @property
    def chosen(self) -> tuple[str, str] | None:
        stats, pair = self.names.cursor_value, self.values.cursor_value
        if stats is None or pair is None:
            return None
        return stats.name, pair[0]

    def _shown_value(self, name: str, value: str) -> str:
        return value if self.reveal_secrets else mask(name, value)

    def _shown_regex(self, name: str, value: str) -> str:
        regex = self.store.header_inventory.mirrord_filter(name, value)
        return one_line(regex.replace(value, self._shown_value(name, value)))

    def _header_cells(self, stats: HeaderStats) -> Sequence[Cell]:
        top = stats.top_values[0][0] if stats.top_values else ""
        return (
            Text(stats.display_name or stats.name, style="bold"),
            f"{stats.share:.0%}",
            stats.distinct_label,
            self._shown_value(stats.name, top),
        )

    def _value_cells(self, pair: tuple[str, int]) -> Sequence[Cell]:
        name = self.names.cursor_key or ""
        return (self._shown_value(name, pair[0]), str(pair[1]))

    # -- live updates ---------------------------------------------------------------------

    def show_changes(self, changes: PendingChanges) -> None:
        self._since_refresh += 1
        if changes.everything or self._since_refresh * 0.1 >= self.REFRESH_EVERY:
            self._since_refresh = 0
            self._reload()

    def _reload(self, names_first: bool = False) -> None:
        inventory = self.store.header_inventory
        self.names.show(inventory.names_by_usefulness(), stick_to_first=names_first)
        self._reload_values()

    def _reload_values(self, *, first: bool = False) -> None:
        name = self.names.cursor_key
        values = [] if name is None else self.store.header_inventory.values(name)
        self.values.show(values, stick_to_first=first)
        # Text, not a str: a str title is markup, and header names come from the network.
        self.values.border_title = Text(f"values of {one_line(name)}") if name else "values"
        self._draw_choice()

    @on(LiveTable.Highlighted, "#header-names")
    def _name_highlighted(self, event: LiveTable.Highlighted) -> None:
        self._reload_values(first=True)

    @on(LiveTable.Highlighted, "#header-values")
    def _value_highlighted(self, event: LiveTable.Highlighted) -> None:
        self._draw_choice()

    def _draw_choice(self) -> None:
        body = self.query_one("#choice-body", Static)
        chosen = self.chosen
        if chosen is None:
            body.update(Text("Pick a header and a value (↑/↓, tab to switch lists).", style="dim"))
            return
        name, value = chosen
        inventory = self.store.header_inventory
        count = inventory.count_matching(name, value)
        head = Text()
        head.append(one_line(f"{name}: {self._shown_value(name, value)}"), style="bold cyan")
        head.append(f"   {count} matching request{'s' if count != 1 else ''}", style="bold")
        head.append("   enter filter · m copy config · c copy regex", style="dim")
        config = inventory.mirrord_config(name, value)
        if not self.reveal_secrets and self._shown_value(name, value) != value:
            config = config.replace(value, self._shown_value(name, value))
        body.update(
            Group(
                head,
                Syntax(terminal_safe(config), "json", background_color="default", word_wrap=True),
            )
        )

    # -- keys -----------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss(None)

    def action_use_as_filter(self) -> None:
        chosen = self.chosen
        if chosen is None:
            self.notify("Pick a header value first.", severity="warning")
            return
        text = header_value_expression(*chosen)
        try:
            parsed = parse_filter(text)
        except FilterError as error:
            self.notify(one_line(f"{text}: {error.message}"), severity="error", markup=False)
            return
        self.dismiss(ChosenFilter(text, parsed))

    def action_copy_mirrord(self) -> None:
        chosen = self.chosen
        if chosen is None:
            self.notify("Pick a header value first.", severity="warning")
            return
        inventory = self.store.header_inventory
        self.app.copy_to_clipboard(inventory.mirrord_config(*chosen))
        self.notify(self._shown_regex(*chosen), title="Copied mirrord config for", markup=False)

    def action_copy_filter(self) -> None:
        chosen = self.chosen
        if chosen is None:
            self.notify("Pick a header value first.", severity="warning")
            return
        regex = self.store.header_inventory.mirrord_filter(*chosen)
        self.app.copy_to_clipboard(regex)
        self.notify(self._shown_regex(*chosen), title="Copied header_filter regex", markup=False)

    def action_toggle_secrets(self) -> None:
        self.reveal_secrets = not self.reveal_secrets
        self.names.refresh()
        self.values.refresh()
        self._draw_choice()
