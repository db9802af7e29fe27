"""The filter prompt opened by ``/``: it checks the expression at every keystroke, shows why an
invalid one is invalid (red, with the position), and hands up only expressions that parse."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Label, Static

from tui.model.filters import Filter, FilterError, parse_filter
from tui.model.terminal_text import one_line


class FilterInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        # Not in the footer: the footer would be rebuilt (a whole-screen layout) each time the
        # prompt takes or leaves the focus. The hint next to the prompt says it; so does help.
        Binding(
            "escape",
            "cancel",
            "Cancel",
            show=False,
            id="filter.cancel",
            tooltip="Put back the filter that was in force before editing",
        ),
    ]

    class Cancelled(Message):
        pass

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled())


class FilterBar(Horizontal):
    """One line, always there (showing it on "/" would re-lay out the whole screen): the
    filter in force, and while editing, whether what is typed parses."""

    DEFAULT_CSS = """
    FilterBar {
        height: 1;
        background: $panel;
        #filter-prompt { width: auto; padding: 0 1; color: $text-accent; text-style: bold; }
        FilterInput, FilterInput:focus {
            border: none; height: 1; padding: 0; width: 1fr; background: $panel;
        }
        FilterInput:focus { background: $boost; }
        FilterInput.-unparsable, FilterInput.-unparsable:focus { color: $text-error; }
        #filter-problem { width: 50%; height: 1; padding: 0 1; color: $text-muted; }
        #filter-problem.-unparsable { color: $text-error; text-style: bold; }
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

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.input = FilterInput(
            placeholder='press / to filter: ~c 5xx, ~h "x-user-id: alice", !~tcp …',
            id="filter-input",
        )
        # Not markup: the message quotes what was typed, and "[/]" there is not a style.
        self.problem = Static(id="filter-problem", markup=False)
        self._editing = False
        self._invalid = False

    def compose(self) -> ComposeResult:
        yield Label("filter", id="filter-prompt")
        yield self.input
        yield self.problem

    @property
    def is_open(self) -> bool:
        """The user is editing the expression."""
        return self._editing

    def open(self, text: str) -> None:
        self._editing = True
        self.input.value = text
        self.input.cursor_position = len(text)
        self._check(text)
        # Focus now, not after a refresh: the keys typed right after "/" (a fast typist, a
        # paste) are already queued and must land in the prompt, not on the screen's keys.
        self.screen.set_focus(self.input)

    def close(self, text: str) -> None:
        """Done editing; the line shows ``text``, the filter in force."""
        self._editing = False
        self.input.value = text
        self._show_problem(None)

    @on(Input.Changed, "#filter-input")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        if not self._editing:
            return  # the line being set to the filter in force, not typing
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
        if invalid != self._invalid:
            # Only on a change: restyling costs more than the keystroke itself.
            self._invalid = invalid
            # Not "-invalid": Input manages that class itself (for its validators).
            self.input.set_class(invalid, "-unparsable")
            self.problem.set_class(invalid, "-unparsable")
        if error is not None:
            line = one_line(f"✗ column {error.position + 1}: {error.message}")
        elif self._editing:
            line = "enter keeps it · esc puts back the one before"
        else:
            line = ""
        self.problem.update(line, layout=False)
