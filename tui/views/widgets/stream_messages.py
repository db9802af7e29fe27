"""The messages an exchange carried after its headers (WebSocket, gRPC), as a list in the detail
pane: direction, time, kind, size, then the text (a hex dump, or a gRPC message's fields) and
what a person should know. Their text is masked like a body's while secrets are hidden."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.text import Text

from tui.model.flows import StreamMessage
from tui.model.shown_text import MESSAGE_BYTES_SHOWN, MESSAGES_SHOWN, message_text
from tui.model.terminal_text import one_line, terminal_safe
from tui.views import cells

_ARROWS = {"in": ("→", "magenta"), "out": ("←", "cyan")}
_KIND_STYLES = {"text": "bold", "binary": "bold", "ping": "dim", "pong": "dim", "close": "yellow"}


def message_line(message: StreamMessage) -> Text:
    """``→ 12:00:01.250  text  23B  compressed``: one message's head."""
    arrow, style = _ARROWS.get(message.direction, ("?", ""))
    moment = datetime.fromtimestamp(message.time, UTC).strftime("%H:%M:%S.%f")[:-3]
    line = Text()
    line.append(f"{arrow} ", style=style)
    line.append(f"{moment}  ", style="dim")
    line.append(f"{message.kind:<6}", style=_KIND_STYLES.get(message.kind, "bold"))
    line.append(f" {cells.size(message.length)}B", style="dim")
    if message.note:
        line.append(
            f"  {one_line(message.note)}",
            style="italic yellow"
            if "lost" in message.note or "loss" in message.note
            else "italic dim",
        )
    return line


def message_payload(message: StreamMessage, reveal: bool = False) -> Text | None:
    """The message's text as shown, its secrets masked unless ``reveal``; a hex dump when it
    is binary (left as sent)."""
    shown = message_text(message, reveal)
    if shown is None:
        return None
    form, words = shown
    if form == "fields":
        text = Text(textwrap.indent(terminal_safe(words), "  "))
    elif form == "hex":
        text = Text("  " + words, style="cyan")
    else:
        text = Text("  " + terminal_safe(words))
    cut = min(len(message.data), MESSAGE_BYTES_SHOWN)
    if message.length > cut:
        text.append(f" … ({cut:,} of {message.length:,} bytes)", style="dim")
    return text


def messages_view(messages: Sequence[StreamMessage], reveal: bool = False) -> RenderableType:
    shown = messages[-MESSAGES_SHOWN:]
    parts: list[RenderableType] = []
    if len(messages) > len(shown):
        parts.append(
            Text(f"… the last {len(shown)} of {len(messages):,} messages", style="dim italic")
        )
    for message in shown:
        parts.append(message_line(message))
        payload = message_payload(message, reveal)
        if payload is not None:
            parts.append(payload)
    return Group(*parts)
