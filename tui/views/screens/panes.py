"""Screens of panes that show which one has the focus on their own borders."""

from __future__ import annotations

from typing import TypeVar

from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget

ResultT = TypeVar("ResultT")


class PanesScreen(Screen[ResultT]):
    """A screen whose focus moves between panes without a repaint of the whole screen.

    Textual repaints every line of a screen when its focus moves. Here the panes that gain and
    lose the focus restyle and redraw themselves (their borders change colour), and nothing
    else on the screen depends on the focus: the whole-screen repaint only doubled the work of
    ``enter`` and ``esc`` while a busy service keeps the tables changing.
    """

    focused: Reactive[Widget | None] = Reactive(None, repaint=False)
