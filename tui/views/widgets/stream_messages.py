"""The messages an exchange carried after its headers (WebSocket, gRPC), as a list in the detail
pane: direction, time, kind, size, then the text (a hex dump, or a gRPC message's fields) and
what a person should know. Their text is masked like a body's while secrets are hidden."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.text import Text

from tui.model import protobuf_raw
from tui.model.flows import StreamMessage
from tui.model.secrets import mask_message_text
from tui.model.terminal_text import one_line, terminal_safe
from tui.views import cells

MESSAGES_SHOWN = 200
"""The latest messages rendered; a long conversation is read from its end."""
MESSAGE_BYTES_SHOWN = 2_048

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
    data = message.data[:MESSAGE_BYTES_SHOWN]
    if not data or message.kind == "close":  # its code and reason are in the note
        return None
    if message.kind == "grpc":
        # No schema: fields by number and wire type, as protoc --decode_raw shows them.
        strings = None if reveal else mask_message_text
        rendered = protobuf_raw.render(data, shown_string=strings)
        fields = Text(textwrap.indent(terminal_safe(rendered), "  "))
        if message.length > len(data):
            fields.append(f" … ({len(data):,} of {message.length:,} bytes)", style="dim")
        return fields
    if message.kind != "binary":
        try:
            decoded = data.decode("utf-8")
            text = Text("  " + terminal_safe(decoded if reveal else mask_message_text(decoded)))
        except UnicodeDecodeError:
            text = None
        if text is not None:
            if message.length > len(data):
                text.append(f" … ({len(data):,} of {message.length:,} bytes)", style="dim")
            return text
    out = Text("  " + data.hex(" "), style="cyan")
    if message.length > len(data):
        out.append(f" … ({len(data):,} of {message.length:,} bytes)", style="dim")
    return out


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
