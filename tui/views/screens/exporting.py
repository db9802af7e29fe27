"""The main screen's keys that take a request elsewhere: ``c`` copies it as a curl command,
``m`` a mirrord config that steals traffic like it, ``w`` writes what is shown to a file.
Secrets leave masked unless the user revealed them (``s``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.screen import Screen

from tui.model.curl import as_curl
from tui.model.flows import Connection, Exchange
from tui.model.secrets import mask
from tui.model.store import Store
from tui.model.terminal_text import one_line, terminal_safe


class ExportKeys(Screen[None]):
    """What the main screen does to copy and write; it provides the selection."""

    if TYPE_CHECKING:
        store: Store
        target: str
        reveal_secrets: bool
        clock: Callable[[], float]

        @property
        def selected_exchange(self) -> Exchange | None: ...
        @property
        def selected_connection(self) -> Connection | None: ...

    def action_write_file(self) -> None:
        from tui.views.screens.write_file import WriteFileScreen

        def written(sentence: str | None) -> None:
            if sentence:
                self.notify(one_line(sentence), title="Written", markup=False)

        self.app.push_screen(
            WriteFileScreen(self.store, self.target, reveal=self.reveal_secrets, now=self.clock()),
            written,
        )

    def action_copy_curl(self) -> None:
        exchange, connection = self.selected_exchange, self.selected_connection
        if exchange is None or connection is None:
            self.notify("Select an HTTP request to copy it as curl.", severity="warning")
            return
        # One policy: the clipboard gets secrets only when they are revealed (s).
        command = as_curl(exchange, connection, masked=not self.reveal_secrets)
        self.app.copy_to_clipboard(command)
        title = "Copied as curl" if self.reveal_secrets else "Copied as curl (secrets masked: s)"
        self.notify(terminal_safe(command), title=title, markup=False)

    def action_copy_mirrord(self) -> None:
        inventory = self.store.header_inventory
        exchange = self.selected_exchange
        # A header with one value so far (score 0) splits nothing: its filter would steal
        # every request.
        ranked = [stats.name for stats in inventory.names_by_usefulness() if stats.score > 0]
        choice: tuple[str, str] | None = None
        if exchange is not None:
            for name in ranked:
                value = exchange.request.header(name)
                if value is not None:
                    choice = (name, value)
                    break
        if choice is None:
            self.notify(
                "No header of this request tells it apart from the others yet (or no request "
                "is selected): press h to pick a header and value yourself.",
                severity="warning",
            )
            return
        name, value = choice
        self.app.copy_to_clipboard(inventory.mirrord_config(name, value))
        shown = inventory.mirrord_filter(name, value)
        if not self.reveal_secrets:
            shown = shown.replace(value, mask(name, value))
        self.notify(one_line(shown), title="Copied mirrord config for", markup=False)
