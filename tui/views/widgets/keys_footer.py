"""The footer of keys, redrawn only when the keys it shows change.

Textual's footer rebuilds itself whenever the focus moves, even when the keys shown stay the
same; that rebuild re-lays out the whole screen, the slowest thing a keystroke can cause here.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer, Input

Signature = tuple[tuple[str, str, bool], ...]


class KeysFooter(Footer):
    _shown: Signature | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        if isinstance(screen.focused, Input):
            # Typing in a prompt hides the letter keys; keep showing what they will do after.
            return
        signature = tuple(
            (key, binding.description, enabled)
            for key, (_node, binding, enabled, _tooltip) in screen.active_bindings.items()
            if binding.show
        )
        if signature == self._shown:
            return
        self._shown = signature
        super().bindings_changed(screen)
