"""The filter prompt opened by ``/``: it checks the expression at every keystroke, shows why an
invalid one is invalid (red, with the position), and hands up only expressions that parse."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Static

from tui.model.filters import Filter, FilterError, parse_filter


class FilterInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="filter.cancel"),
    ]

    class Cancelled(Message):
        pass

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled())


class FilterBar(Vertical):
    """Hidden until opened; ``open(text)`` shows it with ``text`` ready to edit."""

    DEFAULT_CSS = """
    FilterBar {
        height: auto;
        display: none;
        background: $panel;
        &.-open { display: block; }
        Horizontal { height: 1; }
        #filter-prompt { width: auto; padding: 0 1; color: $text-accent; text-style: bold; }
        FilterInput, FilterInput:focus {
            border: none; height: 1; padding: 0; width: 1fr; background: $boost;
        }
        FilterInput.-invalid, FilterInput.-invalid:focus { color: $text-error; }
        #filter-problem { height: auto; padding: 0 1; display: none; color: $text-error; }
        &.-invalid #filter-problem { display: block; }
    }
    """

    class Applied(Message):
        """A valid expression (``filter`` None when the text is empty: no filter)."""

        def __init__(self, text: str, filter: Filter | None) -> None:
            super().__init__()
            self.text = text
            self.filter = filter

    class Closed(Message):
        """The user is done: ``accepted`` (enter) keeps the filter, otherwise restore it."""

        def __init__(self, accepted: bool) -> None:
            super().__init__()
            self.accepted = accepted

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label("filter", id="filter-prompt")
            yield FilterInput(placeholder='~c 5xx  |  ~h "x-user-id: alice"  |  !~tcp  (? help)',
                              id="filter-input")
        yield Static(id="filter-problem")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    @property
    def input(self) -> FilterInput:
        return self.query_one(FilterInput)

    def open(self, text: str) -> None:
        self.add_class("-open")
        self.input.value = text
        self.input.cursor_position = len(text)
        self._check(text)
        # Focus now, not after a refresh: the keys typed right after "/" (a fast typist, a
        # paste) are already queued and must land in the prompt, not on the screen's keys.
        self.screen.set_focus(self.input)

    def close(self) -> None:
        self.remove_class("-open")
        self.set_class(False, "-invalid")

    @on(Input.Changed, "#filter-input")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        valid, parsed = self._check(event.value)
        if valid:
            self.post_message(self.Applied(event.value.strip(), parsed))

    @on(Input.Submitted, "#filter-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        valid, _ = self._check(event.value)
        if not valid:
            self.app.bell()
            return
        self.post_message(self.Closed(accepted=True))

    @on(FilterInput.Cancelled)
    def _cancelled(self, event: FilterInput.Cancelled) -> None:
        event.stop()
        self.post_message(self.Closed(accepted=False))

    def _check(self, text: str) -> tuple[bool, Filter | None]:
        """(valid, the parsed filter or None for no filter); shows the problem if invalid."""
        if not text.strip():
            self._show_problem(None)
            return True, None
        try:
            parsed = parse_filter(text)
        except FilterError as error:
            self._show_problem(error)
            return False, None
        self._show_problem(None)
        return True, parsed

    def _show_problem(self, error: FilterError | None) -> None:
        invalid = error is not None
        self.set_class(invalid, "-invalid")
        self.input.set_class(invalid, "-invalid")
        if error is None:
            return
        # Point at the offending character under the input (the prompt is 8 cells wide).
        caret = Text(" " * (error.position + 8) + "^ ", style="bold")
        caret.append(error.message)
        self.query_one("#filter-problem", Static).update(caret)
