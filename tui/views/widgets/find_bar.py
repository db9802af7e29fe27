"""The find prompt opened by ``f``: it takes the filter line's place while typing, hands up
the text at every keystroke, and says how many matches the detail pane holds."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Label, Static


class FindInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "cancel",
            "Cancel",
            show=False,
            id="find.cancel",
            tooltip="Stop finding: the marks go away",
        ),
    ]

    class Cancelled(Message):
        pass

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled())


class FindBar(Horizontal):
    DEFAULT_CSS = """
    FindBar {
        height: 1;
        background: $panel;
        display: none;
        #find-prompt { width: auto; padding: 0 1; color: $text-warning; text-style: bold; }
        FindInput, FindInput:focus {
            border: none; height: 1; padding: 0; width: 1fr; background: $boost;
        }
        #find-count { width: 50%; height: 1; padding: 0 1; color: $text-muted; }
    }
    """

    class Changed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Closed(Message):
        """``accepted`` (enter) keeps the text to find with n/N; esc drops it."""

        def __init__(self, accepted: bool) -> None:
            super().__init__()
            self.accepted = accepted

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.input = FindInput(placeholder="text to find in headers and bodies", id="find-input")
        self.count = Static(id="find-count")

    def compose(self) -> ComposeResult:
        yield Label("find", id="find-prompt")
        yield self.input
        yield self.count

    @property
    def is_open(self) -> bool:
        return bool(self.display)

    def open(self, text: str) -> None:
        self.display = True
        self.input.value = text
        self.input.cursor_position = len(text)
        self.screen.set_focus(self.input)

    def show_count(self, line: str) -> None:
        self.count.update(line, layout=False)

    @on(Input.Changed, "#find-input")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(event.value))

    @on(Input.Submitted, "#find-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Closed(accepted=True))

    @on(FindInput.Cancelled)
    def _cancelled(self, event: FindInput.Cancelled) -> None:
        event.stop()
        self.post_message(self.Closed(accepted=False))
