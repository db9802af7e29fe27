"""The right-hand detail pane: one exchange (request line, headers, body, then the response),
or a connection's raw bytes (hex or text) when it is not HTTP or the user asks for them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType

from tui.model.bodies import BodyMode
from tui.model.content import decode_body
from tui.model.flows import Connection, Exchange, Message, Request, Response
from tui.model.secrets import mask, mask_text, mask_url
from tui.model.terminal_text import one_line, terminal_safe
from tui.views import cells
from tui.views.widgets.block_view import Block, BlockView, BodyBlock
from tui.views.widgets.stream_messages import messages_view

RAW_SHOWN = 8_192


def clock_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


def section(title: str) -> Rule:
    return Rule(Text(title, style="bold"), align="left", style="dim")


def headers_table(message: Message, reveal: bool) -> RenderableType:
    if not message.headers:
        return Text("  (no headers)", style="dim")
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in message.headers:
        shown = value if reveal else mask(name, value)
        table.add_row(
            f" {one_line(name)}",
            Text(one_line(shown), style="dim italic" if shown != value else ""),
        )
    return table


def _content_type(message: Message) -> str:
    return (message.header("content-type") or "").split(";")[0].strip().lower()


def body_blocks(title: str, message: Message, mode: BodyMode, reveal: bool) -> list[Block]:
    """A body's section: its title, how it was decoded, the body (rendered when drawn, with
    secrets masked unless ``reveal``), and what was left out."""
    if not message.body_length:
        return []
    decoded = decode_body(message)
    blocks: list[Block] = [section(f"{title} ({cells.size(message.body_length)}B)")]
    if decoded.describe():
        blocks.append(Text(one_line(decoded.describe()), style="dim italic"))
    content_type = message.header("content-type") or ""
    blocks.append(BodyBlock(decoded.data, content_type, mode, masked=not reveal))
    if not decoded.decoded and message.body_truncated:
        blocks.append(
            Text(
                f"… the first {len(message.body):,} of {message.body_length:,} bytes were kept",
                style="dim italic",
            )
        )
    return blocks


def trailers_view(title: str, message: Message, reveal: bool) -> list[RenderableType]:
    if not message.trailers:
        return []
    trailers = Message(headers=list(message.trailers))
    return [section(title), headers_table(trailers, reveal)]


def _mostly_text(text: str) -> bool:
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\r\n\t")
    return printable >= 0.95 * len(text)


def hex_dump(data: bytes, offset: int = 0) -> Text:
    out = Text()
    for start in range(0, len(data), 16):
        row = data[start : start + 16]
        hex_part = " ".join(f"{b:02x}" for b in row)
        ascii_part = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        out.append(f"{offset + start:08x}  ", style="dim")
        out.append(f"{hex_part:<47}  ")
        out.append(ascii_part, style="cyan")
        out.append("\n")
    out.rstrip()
    return out


def request_line(request: Request, reveal: bool) -> Text:
    method, style = cells.method(request.method)
    line = Text()
    line.append(one_line(method), style)
    target = request.target if reveal else mask_url(request.target)
    line.append(f" {one_line(target)} ", style="bold")
    line.append(f"HTTP/{request.http_version}", style="dim")
    return line


def status_line(response: Response) -> Text:
    line = Text(f"HTTP/{response.http_version} ", style="dim")
    line.append(*cells.status(response.status))
    line.append(f" {one_line(response.reason)}", style="bold")
    return line


def exchange_view(
    exchange: Exchange, connection: Connection, *, reveal: bool, mode: BodyMode = "auto"
) -> list[Block]:
    """One exchange as blocks of a view (bodies in view ``mode``); secrets masked unless
    ``reveal``; network text always terminal-safe."""
    request = exchange.request
    facts = Text(style="dim")
    facts.append(f"#{exchange.index}  {clock_time(exchange.started)}  ")
    facts.append(
        f"{cells.address(connection.client, connection.client_port)} → "
        f"{cells.address(connection.server, connection.server_port)}"
    )
    if exchange.latency_ms is not None:
        facts.append(f"  {cells.latency(exchange.latency_ms)}")
    parts: list[RenderableType] = [request_line(request, reveal), facts]
    if exchange.error:
        # The error quotes the bytes it could not parse, secrets included.
        error = exchange.error if reveal else mask_text(exchange.error)
        parts.append(Text(f"malformed: {one_line(error)}", style="bold red"))
    if exchange.incomplete:
        parts.append(Text("incomplete: bytes of this exchange were lost", style="yellow"))
    # How it was seen: why it is incomplete, ambiguous framing...
    parts += [Text(note, style="yellow") for note in exchange.notes]
    if exchange.upgraded and connection.protocol == "ws":
        parts.append(Text("switched to WebSocket: its messages follow the response", style="cyan"))
    elif exchange.upgraded:
        parts.append(
            Text("protocol switched here: the rest of the stream is raw (r)", style="cyan")
        )
    parts += [section("request headers"), headers_table(request, reveal)]
    blocks: list[Block] = [Group(*parts), *body_blocks("request body", request, mode, reveal)]
    parts = [*trailers_view("request trailers", request, reveal), Text()]
    response = exchange.response
    if response is None:
        parts.append(Text("waiting for the response…", style="dim italic"))
        return [*blocks, Group(*parts)]
    for early in exchange.informational:
        parts.append(status_line(early))
        if early.headers:
            parts.append(headers_table(early, reveal))
    parts += [status_line(response), section("response headers"), headers_table(response, reveal)]
    blocks += [Group(*parts), *body_blocks("response body", response, mode, reveal)]
    parts = trailers_view("response trailers", response, reveal)
    if exchange.messages:
        parts += [
            section(f"messages ({len(exchange.messages):,})"),
            messages_view(exchange.messages, reveal),
        ]
    for note in exchange.notes:
        parts.append(Text(one_line(note), style="yellow"))
    return [*blocks, Group(*parts)] if parts else blocks


def _raw_direction(
    title: str, data: bytes | bytearray, total: int, reveal: bool
) -> list[RenderableType]:
    shown = bytes(data[:RAW_SHOWN])
    parts: list[RenderableType] = [section(f"{title} ({total:,} bytes)")]
    if not shown:
        parts.append(Text("  (nothing)", style="dim"))
        return parts
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and _mostly_text(text):
        parts.append(Text(terminal_safe(text if reveal else mask_text(text))))
    else:
        parts.append(hex_dump(shown))
    if total > len(shown):
        parts.append(Text(f"… {len(shown):,} of {total:,} bytes shown", style="dim italic"))
    return parts


def raw_view(connection: Connection, *, reveal: bool) -> RenderableType:
    """The connection's first bytes; as text, with secrets masked unless ``reveal``."""
    parts: list[RenderableType] = [connection_facts(connection)]
    parts += _raw_direction("client → server", connection.raw_in, connection.bytes_in, reveal)
    parts += _raw_direction("server → client", connection.raw_out, connection.bytes_out, reveal)
    return Group(*parts)


def connection_facts(connection: Connection) -> RenderableType:
    title = Text()
    title.append(f"{connection.protocol.upper()} ", style="bold")
    title.append(
        f"{cells.address(connection.client, connection.client_port)} → "
        f"{cells.address(connection.server, connection.server_port)}"
    )
    title.append(f"  {one_line(connection.source)} #{connection.conn}", style="dim")
    lines: list[RenderableType] = [title]
    opened = Text(f"opened {clock_time(connection.opened)}", style="dim")
    if connection.closed is not None:
        opened.append(f"  {connection.state} {clock_time(connection.closed)}")
    if connection.mid_stream:
        opened.append("  joined mid-stream", style="yellow")
    if connection.gaps:
        opened.append(f"  {connection.gaps} gaps", style="yellow")
    lines.append(opened)
    if connection.tls is not None:
        tls = connection.tls
        info = Text("TLS ClientHello  ", style="bold")
        info.append("SNI ", style="dim").append(one_line(tls.sni or "(none)"), style="bold cyan")
        info.append("  ALPN ", style="dim").append(one_line(", ".join(tls.alpn)) or "(none)")
        if tls.version:
            info.append("  ", style="dim").append(one_line(tls.version))
        lines.append(info)
    return Group(*lines)


class DetailPane(BlockView, can_focus=True):
    """Shows whatever the main screen hands it; it keeps no model state of its own.

    Blocks are turned into lines once per change (and per width), bodies only line by line as
    they come on screen: a new selection repaints this pane alone, not the screen's layout.
    """

    DEFAULT_CSS = """
    DetailPane {
        height: 1fr;
        background: $surface;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "scroll_up", "Scroll up", show=False, id="detail.up"),
        Binding("down,j", "scroll_down", "Scroll down", show=False, id="detail.down"),
        Binding("pageup", "page_up", "Page up", show=False, id="detail.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="detail.page_down"),
        Binding("home,g", "scroll_home", "Top", show=False, id="detail.top"),
        Binding("end,G", "scroll_end", "Bottom", show=False, id="detail.bottom"),
    ]

    def show(self, content: RenderableType | list[Block], *, keep_scroll: bool = False) -> None:
        if isinstance(content, list):
            self.show_blocks(content, keep_scroll=keep_scroll)
        else:
            self.show_blocks([content], keep_scroll=keep_scroll)
