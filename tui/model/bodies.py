"""Body views: a message body as lines a person reads, in the view asked for.

``auto`` picks by content type, then by the bytes themselves. ``json`` pretty-prints and folds
containers nested past ``FOLD_DEPTH``; ``markup`` indents XML and HTML by tag; ``form`` makes a
table of ``application/x-www-form-urlencoded`` fields; ``multipart`` lists the parts with their
headers; ``text`` and ``hex`` show the bytes as they are. Images and archives read as their type
and size. A view that does not fit the body says why in ``note`` and falls back to text (or hex).

Formatting is linear but not free: bodies past ``FORMAT_LIMIT`` are shown as text, whose lines
(like hex rows) are only made when drawn, so that a 10 MB body opens at once.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from tui.model.text_lines import HexDump, Line, Span, WrappedText, safe, wrap

BodyMode = Literal["auto", "json", "markup", "form", "multipart", "text", "hex"]
BODY_MODES: tuple[BodyMode, ...] = ("auto", "json", "markup", "form", "multipart", "text", "hex")
"""The order ``v`` goes through them."""

FORMAT_LIMIT = 512 * 1024
"""Bytes past which a body is not formatted (JSON, markup, form, multipart) but shown as text."""

FOLD_DEPTH = 6
"""JSON containers nested deeper than this show as ``{… 3 keys}``."""

MULTIPART_PREVIEW = 40
"""Lines of a text part shown in the multipart view."""


@dataclass(frozen=True, slots=True)
class RenderedBody:
    kind: str
    """What is shown: ``JSON``, ``XML/HTML``, ``form``, ``multipart``, ``text``, ``hex``, or a
    file type such as ``PNG image``."""
    lines: Sequence[Line]
    note: str = ""
    """Why the view asked for is not the one shown, or what is left out."""


_SIGNATURES: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "PNG image"),
    (b"\xff\xd8\xff", 0, "JPEG image"),
    (b"GIF87a", 0, "GIF image"),
    (b"GIF89a", 0, "GIF image"),
    (b"WEBP", 8, "WebP image"),
    (b"\x00\x00\x01\x00", 0, "ICO image"),
    (b"%PDF-", 0, "PDF document"),
    (b"PK\x03\x04", 0, "ZIP archive"),
    (b"\x1f\x8b", 0, "gzip data"),
    (b"BZh", 0, "bzip2 data"),
    (b"\xfd7zXZ\x00", 0, "xz data"),
    (b"7z\xbc\xaf\x27\x1c", 0, "7-Zip archive"),
    (b"\x28\xb5\x2f\xfd", 0, "zstd data"),
    (b"ustar", 257, "tar archive"),
    (b"\x00asm", 0, "WebAssembly module"),
]


def file_type(body: bytes) -> str | None:
    """The type of an image or archive, from its first bytes (None for anything else)."""
    for magic, offset, name in _SIGNATURES:
        if body[offset : offset + len(magic)] == magic:
            return name
    return None


def _image_size(body: bytes, kind: str) -> str:
    if kind == "PNG image" and len(body) >= 24:
        width, height = struct.unpack(">II", body[16:24])
        return f", {width}x{height}"
    if kind == "GIF image" and len(body) >= 10:
        width, height = struct.unpack("<HH", body[6:10])
        return f", {width}x{height}"
    return ""


def human_size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / (1024 * 1024):.1f} MB"


def _text_of(body: bytes) -> str | None:
    """The body as text if it is UTF-8 and mostly printable, else None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(body) - 3:
            return None
        # Only a character cut at the end (a capped body): the rest is text.
        text = body[: error.start].decode("utf-8")
    sample = text[:4096]
    printable = sum(1 for ch in sample if ch.isprintable() or ch in "\r\n\t")
    return text if printable >= 0.95 * len(sample) else None


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def auto_mode(body: bytes, content_type: str) -> BodyMode:
    """The view ``auto`` stands for, for this body."""
    media = _media_type(content_type)
    head = body[:64].lstrip()
    if "json" in media or (not media and head[:1] in (b"{", b"[")):
        return "json"
    if "xml" in media or "html" in media or (not media and head[:1] == b"<"):
        return "markup"
    if media == "application/x-www-form-urlencoded":
        return "form"
    if media.startswith("multipart/"):
        return "multipart"
    return "text"


def render_body(body: bytes, content_type: str, mode: BodyMode, width: int) -> RenderedBody:
    """``body`` as lines of at most ``width`` characters, in view ``mode``."""
    if mode == "hex":
        return RenderedBody("hex", HexDump(body, width))
    if mode == "auto":
        kind = file_type(body)
        if kind is not None:
            summary = f"{kind}, {human_size(len(body))}{_image_size(body, kind)}"
            return RenderedBody(kind, [((summary, "bold"), ("  (v: hex)", "dim"))])
        mode = auto_mode(body, content_type)
    if mode != "text" and len(body) > FORMAT_LIMIT:
        return _as_text(body, width, f"larger than {human_size(FORMAT_LIMIT)}: not formatted")
    if mode == "json":
        return _json(body, width)
    if mode == "markup":
        return _markup(body, width)
    if mode == "form":
        return _form(body, width)
    if mode == "multipart":
        return _multipart(body, content_type, width)
    return _as_text(body, width)


def _as_text(body: bytes, width: int, note: str = "") -> RenderedBody:
    text = _text_of(body)
    if text is None:
        why = "not text: shown as hex"
        return RenderedBody("hex", HexDump(body, width), f"{note}; {why}" if note else why)
    return RenderedBody("text", WrappedText(text, width), note)


# ------------------------------------------------------------------------------ JSON

_JSON_STYLES = {str: "green", bool: "italic magenta", type(None): "italic magenta"}


def _json(body: bytes, width: int) -> RenderedBody:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as error:
        reason = str(error).split(":")[0] if isinstance(error, ValueError) else "nested too deep"
        return _as_text(body, width, f"not JSON ({reason})")
    lines: list[Line] = []
    _json_lines(value, 0, (), "", lines)
    return RenderedBody("JSON", wrap(lines, width))


def _scalar(value: object) -> Span:
    text = safe(json.dumps(value, ensure_ascii=False))
    return (text, _JSON_STYLES.get(type(value), "cyan"))


def _json_lines(value: object, depth: int, prefix: Line, comma: str, out: list[Line]) -> None:
    """Append ``value`` (after ``prefix``, such as its key) indented at ``depth``."""
    indent = ("  " * depth, "")
    tail: Line = ((comma, ""),) if comma else ()
    if isinstance(value, dict | list) and value and depth >= FOLD_DEPTH:
        what = f"{len(value)} keys" if isinstance(value, dict) else f"{len(value)} items"
        brackets = "{}" if isinstance(value, dict) else "[]"
        out.append((indent, *prefix, (f"{brackets[0]}… {what}{brackets[1]}", "dim"), *tail))
    elif isinstance(value, dict) and value:
        out.append((indent, *prefix, ("{", "")))
        for position, (key, item) in enumerate(value.items()):
            key_span = (safe(json.dumps(key, ensure_ascii=False)), "bold blue")
            more = "," if position < len(value) - 1 else ""
            _json_lines(item, depth + 1, (key_span, (": ", "")), more, out)
        out.append((indent, ("}", ""), *tail))
    elif isinstance(value, list) and value:
        out.append((indent, *prefix, ("[", "")))
        for position, item in enumerate(value):
            _json_lines(item, depth + 1, (), "," if position < len(value) - 1 else "", out)
        out.append((indent, ("]", ""), *tail))
    elif isinstance(value, dict | list):
        out.append((indent, *prefix, ("{}" if isinstance(value, dict) else "[]", ""), *tail))
    else:
        out.append((indent, *prefix, _scalar(value), *tail))


# ------------------------------------------------------------------------------ XML / HTML

_TOKEN = re.compile(r"<!--.*?-->|<[^>]*>|[^<]+", re.DOTALL)
_VOID = re.compile(r"area|base|br|col|embed|hr|img|input|link|meta|param|source|track|wbr")
"""HTML elements that never have a closing tag."""
_TAG_NAME = re.compile(r"</?\s*([A-Za-z][A-Za-z0-9:_.-]*)")
MAX_INDENT = 30


def _markup(body: bytes, width: int) -> RenderedBody:
    text = _text_of(body)
    if text is None or "<" not in text:
        return _as_text(body, width, "not XML or HTML")
    lines: list[Line] = []
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if not token.startswith("<"):
            content = " ".join(token.split())
            if content:
                lines.append((("  " * min(depth, MAX_INDENT), ""), (safe(content), "")))
            continue
        name_match = _TAG_NAME.match(token)
        name = name_match.group(1).lower() if name_match else ""
        closing = token.startswith("</")
        if closing:
            depth = max(depth - 1, 0)
        style = "dim" if token.startswith(("<!", "<?")) else "bold blue"
        lines.append((("  " * min(depth, MAX_INDENT), ""), (safe(" ".join(token.split())), style)))
        opens = not closing and not token.endswith("/>") and not token.startswith(("<!", "<?"))
        if opens and not _VOID.fullmatch(name):
            depth += 1
    return RenderedBody("XML/HTML", wrap(lines, width))


# ------------------------------------------------------------------------------ forms


def _form(body: bytes, width: int) -> RenderedBody:
    text = _text_of(body)
    if text is None or "=" not in text:
        return _as_text(body, width, "not a URL-encoded form")
    fields = parse_qsl(text.strip(), keep_blank_values=True)
    if not fields:
        return _as_text(body, width, "not a URL-encoded form")
    name_width = min(max(len(name) for name, _ in fields), 30)
    lines: list[Line] = [
        ((safe(name).ljust(name_width), "bold cyan"), (" = ", "dim"), (safe(value), ""))
        for name, value in fields
    ]
    return RenderedBody("form", wrap(lines, width))


# ------------------------------------------------------------------------------ multipart

_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)


def _multipart(body: bytes, content_type: str, width: int) -> RenderedBody:
    found = _BOUNDARY.search(content_type)
    if found is None:
        return _as_text(body, width, "not multipart (no boundary)")
    boundary = b"--" + (found.group(1) or found.group(2)).encode("latin-1", "replace")
    chunks = body.split(boundary)[1:]
    lines: list[Line] = []
    for number, chunk in enumerate(chunks, 1):
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, _, content = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        lines.append(((f"part {number}", "bold"), (f"  {human_size(len(content))}", "dim")))
        part_type = ""
        for header in head.decode("latin-1").split("\r\n"):
            name, _, value = header.partition(":")
            if name.strip().lower() == "content-type":
                part_type = value.strip()
            if header.strip():
                lines.append(((f"  {safe(name.strip())}:", "bold cyan"), (safe(value), "")))
        lines += _part_preview(content, part_type)
    if not lines:
        return _as_text(body, width, "not multipart (boundary not found)")
    return RenderedBody("multipart", wrap(lines, width))


def _part_preview(content: bytes, content_type: str) -> list[Line]:
    kind = file_type(content)
    text = None if kind is not None else _text_of(content)
    if text is None:
        what = kind or _media_type(content_type) or "binary data"
        return [((f"  ({what}, {human_size(len(content))})", "dim italic"),)]
    shown = text.splitlines()[:MULTIPART_PREVIEW]
    lines: list[Line] = [(("  ", ""), (safe(line), "")) for line in shown]
    if len(text.splitlines()) > MULTIPART_PREVIEW:
        lines.append((("  …", "dim"),))
    return lines
