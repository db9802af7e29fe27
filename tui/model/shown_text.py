"""An exchange as the detail pane shows it, as one searchable text: what find looks through.

Find must land only on text the user can see: with secrets hidden, a search for part of a
token must not pick the exchange whose masked header, body or message holds it (that would tell
what the secret contains, and mark nothing on screen). So the text here goes through the same
masking as the pane, and holds the messages the pane lists (the latest ``MESSAGES_SHOWN``, each
cut at ``MESSAGE_BYTES_SHOWN`` bytes), as the pane words them.
"""

from __future__ import annotations

from typing import Literal

from tui.model import protobuf_raw
from tui.model.content import decode_body
from tui.model.flows import Exchange, Message, StreamMessage
from tui.model.secrets import (
    could_hold_secrets,
    mask,
    mask_body,
    mask_message_text,
    mask_text,
    mask_url,
)

MESSAGES_SHOWN = 200
"""The latest messages of an exchange the pane lists; a long conversation is read from its end."""
MESSAGE_BYTES_SHOWN = 2_048
"""Bytes of a message the pane shows."""

PART_SEPARATOR = b"\n"
"""Between the head, the bodies and the messages of one exchange."""


MessageForm = Literal["fields", "text", "hex"]
"""How a message reads: a gRPC message's fields, text, or hex pairs."""


def message_text(message: StreamMessage, reveal: bool) -> tuple[MessageForm, str] | None:
    """A message's text as the pane shows it (secrets masked unless ``reveal``): a gRPC
    message's fields, a WebSocket text message as text, anything else as hex pairs; None
    for a close (its code and reason are in the note) or an empty message."""
    data = message.data[:MESSAGE_BYTES_SHOWN]
    if not data or message.kind == "close":
        return None
    if message.kind == "grpc":
        # No schema: fields by number and wire type, as protoc --decode_raw shows them.
        shown = None if reveal else mask_message_text
        return "fields", protobuf_raw.render(data, shown_string=shown)
    if message.kind != "binary":
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return "text", decoded if reveal else mask_message_text(decoded)
    return "hex", data.hex(" ")


def shown_body(message: Message, reveal: bool) -> bytes:
    """A body as the pane shows it: gzip and the like undone, secrets masked unless
    ``reveal``."""
    if not message.body:
        return b""
    data = message.body
    if message.header("content-encoding") is not None:
        data = decode_body(message).data
    # The policy's own quick test first: most bodies hold nothing to mask, and masking a
    # small JSON body (parse, walk) costs twenty times more.
    if reveal or not could_hold_secrets(data):
        return data
    return mask_body(data, message.header("content-type") or "")


def head_text(exchange: Exchange, reveal: bool) -> str:
    """The request line, the status lines, headers and trailers (``name: value``), and the
    error quoting what could not be parsed, as shown."""
    request = exchange.request
    target = request.target if reveal else mask_url(request.target)
    lines = [f"{request.method} {target}"]
    lines += _header_lines(request, reveal)
    if exchange.error:
        lines.append(exchange.error if reveal else mask_text(exchange.error))
    for early in exchange.informational:
        lines.append(f"{early.status} {early.reason}")
        lines += _header_lines(early, reveal)
    response = exchange.response
    if response is not None:
        lines.append(f"{response.status} {response.reason}")
        lines += _header_lines(response, reveal)
    return "\n".join(lines)


def _header_lines(message: Message, reveal: bool) -> list[str]:
    fields = [*message.headers, *message.trailers]
    if reveal:
        return list(map(": ".join, fields))
    return [f"{name}: {mask(name, value)}" for name, value in fields]


def messages_text(exchange: Exchange, reveal: bool) -> str:
    """The messages the pane lists, one per line."""
    shown = (message_text(message, reveal) for message in exchange.messages[-MESSAGES_SHOWN:])
    return "\n".join(text for _, text in filter(None, shown))


def exchange_parts(exchange: Exchange, reveal: bool) -> tuple[str, bytes]:
    """The exchange's head and messages as text (lowered by find with Unicode rules), and its
    bodies as bytes (lowered ASCII-only: they can be any bytes)."""
    head = head_text(exchange, reveal)
    if exchange.messages:
        head += "\n" + messages_text(exchange, reveal)
    response = exchange.response
    bodies = [shown_body(exchange.request, reveal)]
    if response is not None:
        bodies.append(shown_body(response, reveal))
    bodies = [body for body in bodies if body]
    # A lone body is kept as it is, not copied: it may be megabytes.
    return head, bodies[0] if len(bodies) == 1 else PART_SEPARATOR.join(bodies)
