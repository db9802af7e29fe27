"""``w``: write what the main screen shows (the filtered view) to a file; the extension picks the
format (.har, .jsonl, .pcap). Secrets stay masked in a HAR unless they are revealed on screen;
JSON lines and pcap keep the bytes as sent, since they are for replay. The file is created
0600, never through a symbolic link; an existing one is replaced only when enter is pressed
again on the same path."""

from __future__ import annotations

import time
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static
from textual.widgets.input import Selection

from agent import __version__
from agent.errors import UserError
from tui.model.store import Store
from tui.output.jsonl import RecordingHeader
from tui.output.private_file import FileExists
from tui.output.recording import write_view


def default_path(now: float) -> str:
    return time.strftime("podtap-%Y%m%d-%H%M%S.har", time.localtime(now))


class WriteFileScreen(ModalScreen[str | None]):
    """Asks for a path, writes the view there, and is dismissed with the confirmation (or
    None when cancelled). A path that cannot be written keeps the prompt open with the reason."""

    DEFAULT_CSS = """
    WriteFileScreen {
        align: center middle;
    }
    #write-file {
        width: 80;
        height: auto;
        border: round $accent;
        padding: 0 1;
        background: $surface;
    }
    #write-file-error {
        color: $text-error;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "cancel",
            "Cancel",
            key_display="esc",
            id="write_file.cancel",
            tooltip="Close without writing",
        ),
    ]

    def __init__(self, store: Store, target: str, *, reveal: bool, now: float) -> None:
        super().__init__(id="write-file-screen")
        self.store = store
        self.target = target
        self.reveal = reveal
        self.path_input = Input(value=default_path(now), id="write-file-path")
        self.error = Static("", id="write-file-error", markup=False)
        self._confirmed_path: str | None = None
        """The existing file the user was warned about: enter on it again replaces it."""

    def compose(self) -> ComposeResult:
        shown = len(self.store.visible_connections())
        secrets = "revealed" if self.reveal else "masked"
        with Vertical(id="write-file"):
            yield Static(
                f"Write the {shown} connections shown to a file "
                f"(.har: HTTP exchanges, secrets {secrets}; .jsonl: podtap open; "
                ".pcap: Wireshark). Enter writes, esc cancels."
            )
            yield self.path_input
            yield self.error

    def on_mount(self) -> None:
        self.path_input.focus()
        # The default name is selected whole: a typed path replaces it rather than landing
        # inside it, and enter alone keeps it.
        self.path_input.selection = Selection(0, len(self.path_input.value))

    @on(Input.Submitted, "#write-file-path")
    def _submitted(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        if not path:
            self.error.update("Type a file name ending in .har, .jsonl or .pcap.")
            return
        store = self.store
        # Oldest first, as a recording would hold them.
        view = [
            (conn, store.visible_exchanges(conn.key))
            for conn in reversed(store.visible_connections())
        ]
        ports = sorted({conn.server_port for conn, _ in view if conn.server_port})
        header = RecordingHeader(podtap=__version__, target=self.target, ports=ports)
        replace = path == self._confirmed_path
        try:
            written = write_view(path, view, header, reveal=self.reveal, replace=replace)
        except FileExists as error:
            self._confirmed_path = path
            self.error.update(f"{error} Press enter again to replace it, or change the name.")
            return
        except UserError as error:
            self._confirmed_path = None
            self.error.update(str(error))
            return
        self.dismiss(written.sentence())

    def action_cancel(self) -> None:
        self.dismiss(None)
