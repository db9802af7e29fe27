"""Copy as curl: a shell command that replays a captured request."""

from __future__ import annotations

import base64
import shlex

from tui.model.flows import Connection, Exchange
from tui.model.secrets import mask, mask_body, mask_url
from tui.model.terminal_text import one_line

# Headers curl writes itself from the command line (the URL, the body).
_IMPLIED = frozenset({"host", "content-length", "transfer-encoding"})


def as_curl(
    exchange: Exchange,
    connection: Connection,
    *,
    masked: bool = False,
) -> str:
    """The curl command for ``exchange``'s request; ``masked`` hides its secrets (headers, URL
    parameters and userinfo, body fields) as :mod:`tui.model.secrets` says."""
    request = exchange.request
    authority = request.host or _authority(connection)
    target = request.target if request.target.startswith("/") else "/" + request.target
    url = request.target if "://" in request.target else f"http://{authority}{target}"
    body = request.body
    if masked:
        url = mask_url(url)
        body = mask_body(body, request.header("content-type") or "")
    first = ["curl"]
    if request.http_version == "1.0":
        first.append("--http1.0")
    elif request.http_version == "2" and "://" not in request.target:
        # Seen in clear text without an upgrade: the server speaks HTTP/2 from the first byte.
        first.append("--http2-prior-knowledge")
    if request.method == "HEAD":
        first.append("--head")
    elif request.method and (request.method != "GET" or request.body_length):
        first += ["-X", _shell_quote(request.method)]
    first.append(_shell_quote(url))
    lines = [" ".join(first)]
    for name, value in request.headers:
        if name.lower() in _IMPLIED:
            continue
        shown = mask(name, value) if masked else value
        lines.append(f"-H {_shell_quote(f'{name}: {shown}')}")
    feed = ""
    if request.body_length:
        if _is_text(body):
            lines.append(f"--data-binary {shlex.quote(body.decode())}")
        else:
            # Arguments cannot carry NUL bytes: binary bodies go through stdin.
            encoded = base64.b64encode(body).decode()
            feed = f"printf %s {encoded} | base64 -d | "
            lines.append("--data-binary @-")
    command = feed + " \\\n  ".join(lines)
    if request.body_truncated:
        kept = len(request.body)
        command = f"# the body is cut: {kept} of {request.body_length} bytes were kept\n{command}"
    return command


def _authority(connection: Connection) -> str:
    host = connection.server
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{connection.server_port}"


def _is_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(char.isprintable() or char in "\n\t\r" for char in text)


def _shell_quote(text: str) -> str:
    """``text`` as one shell word. A header may carry control characters (h11 lets ESC
    through): those are written as ``$'\\x1b'`` escapes of their UTF-8 bytes, so the command
    pasted into a terminal holds none (``\\x1b[201~`` would end a bracketed paste early)."""
    if one_line(text) == text:
        return shlex.quote(text)
    return "$'" + "".join(_ansi_c_escaped(char) for char in text) + "'"


def _ansi_c_escaped(char: str) -> str:
    if char in "\\'":
        return "\\" + char
    if one_line(char) == char:
        return char
    return "".join(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogateescape"))
