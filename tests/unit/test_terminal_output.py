"""Escape sequences from the traffic through each text output: dump --http always escapes,
plain dump escapes on a terminal only, copy as curl holds no control character."""

from __future__ import annotations

import os
import pty
import select
import subprocess
from argparse import Namespace

import pytest

from tests.hostile_traffic import OSC0, OSC52, escape_script
from tui.commands.dump import make_writer
from tui.model.curl import as_curl
from tui.model.store import Store
from tui.model.updates import AgentEvent
from tui.output.exchange_text import ExchangeTextFormatter
from tui.output.text import TextFormatter, TextWriter
from tui.targets import parse_target

pytestmark = pytest.mark.timeout(30)

CONTROLS = ("\x1b", "\x07", "\x9b")


def test_dump_http_escapes_headers_and_flags() -> None:
    store = Store()
    change = store.apply(escape_script().updates())
    text = ExchangeTextFormatter().format_change(change, store.get)
    for control in CONTROLS:
        assert control not in text
    assert "X-Note: clip\\x1b]52;c;cGF5bG9hZA==\\x1b\\" in text
    assert "X-Reply: t\\x1b]0;pwned\\x07" in text


def plain_text(*, escape: bool) -> str:
    formatter = TextFormatter(responses=True, escape=escape)
    return "".join(
        formatter.format(u.source, u.event)
        for u in escape_script().updates()
        if isinstance(u, AgentEvent)
    )


def test_plain_dump_escapes_only_when_asked() -> None:
    escaped = plain_text(escape=True)
    for control in CONTROLS:
        assert control not in escaped
    assert "X-Note: clip\\x1b]52;c;cGF5bG9hZA==\\x1b\\\r\n" in escaped  # CRLF kept
    raw = plain_text(escape=False)
    assert f"X-Note: clip{OSC52}" in raw  # mirrord's bytes, for pipes and files
    assert f"title{OSC0}body" in raw


@pytest.mark.parametrize("terminal", [True, False])
def test_dump_escapes_when_stdout_is_a_terminal(terminal: bool) -> None:
    args = Namespace(
        format="text", http=False, responses=True, target=parse_target("host"), ports=[80]
    )
    controller, device = pty.openpty()
    read_end, write_end = os.pipe()
    out_fd = device if terminal else write_end
    try:
        with os.fdopen(os.dup(out_fd), "wb") as stdout:
            writer = make_writer(args, stdout)
            assert isinstance(writer, TextWriter)
            writer.write(escape_script().updates())
        reader = controller if terminal else read_end
        written = everything_written(reader)
    finally:
        for fd in (controller, device, read_end, write_end):
            os.close(fd)
    assert (b"\x1b" in written) is not terminal
    assert (b"\\x1b]0;pwned\\x07" in written) is terminal


def everything_written(fd: int) -> bytes:
    """What the other end of ``fd`` wrote (it is still open): a terminal hands it over in
    pieces, so one read may return only the first."""
    pieces = []
    while select.select([fd], [], [], 0.5)[0]:
        piece = os.read(fd, 65536)
        if not piece:
            break
        pieces.append(piece)
    return b"".join(pieces)


def test_copy_as_curl_holds_no_control_character_and_sends_the_same_bytes() -> None:
    store = Store()
    store.apply(escape_script().updates())
    (connection,) = store.connections.values()
    command = as_curl(connection.exchanges[0], connection, masked=False)
    for control in CONTROLS:
        assert control not in command
    header = next(line for line in command.splitlines() if "X-Note" in line)
    word = header.strip().removeprefix("-H ").removesuffix(" \\")
    shell = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True)
    assert shell.stdout == f"X-Note: clip{OSC52}".encode()
