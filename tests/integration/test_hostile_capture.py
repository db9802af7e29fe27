"""Hostile input end to end: escape sequences and secrets sent by a real curl through a real
capture reach ``dump`` escaped and masked, and ``record`` writes its file privately."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import signal
import stat
import sys
from pathlib import Path

import pytest

from tests.integration.test_dump import PORT, curl, running_dump, serving, url
from tests.netlab import Lab

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
OSC52 = "\x1b]52;c;cGF5bG9hZA==\x1b\\"
OSC0 = "\x1b]0;pwned\x07"
HOSTILE_HEADERS = (
    "-H",
    f"X-Note: clip{OSC52}",
    "-H",
    f"X-Title: {OSC0}",
    "-H",
    "Authorization: Bearer s3cr3t",
    "-H",
    "X-Api-Key: s3cr3t",
)


@pytest.mark.root
async def test_dump_http_escapes_and_masks_what_a_client_sent(lab: Lab) -> None:
    with serving(lab, lab.ns_ip):
        async with running_dump(f"netns/{lab.name}", "-p", str(PORT), "--http") as dump:
            await dump.wait_for_stderr("Listening for traffic")
            await curl(url(lab.ns_ip, "/p?access_token=s3cr3t&page=2"), *HOSTILE_HEADERS)
            await dump.wait_for_stdout(lambda out: b"## Response" in out)
            status, stdout = await dump.stop()
    assert status == 0
    assert b"\x1b" not in stdout
    assert b"\x07" not in stdout
    text = stdout.decode()
    assert "X-Note: clip\\x1b]52;c;cGF5bG9hZA==\\x1b\\" in text
    assert "X-Title: \\x1b]0;pwned\\x07" in text
    assert "s3cr3t" not in text
    assert "Authorization: Bearer ••••••" in text
    assert "GET /p?access_token=••••••&page=2 HTTP/1.1" in text


async def dump_on_a_terminal(lab: Lab) -> bytes:
    """What ``podtap dump`` writes when its stdout is a terminal (a pty), for one request."""
    controller, terminal = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui",
        "dump",
        f"netns/{lab.name}",
        "-p",
        str(PORT),
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=terminal,
        stderr=asyncio.subprocess.PIPE,
    )
    os.close(terminal)
    seen = bytearray()
    loop = asyncio.get_running_loop()
    try:
        assert process.stderr is not None
        async with asyncio.timeout(30):
            while b"Listening" not in await process.stderr.readline():
                pass
        await curl(url(lab.ns_ip, "/"), *HOSTILE_HEADERS)
        async with asyncio.timeout(20):
            while b"X-Title" not in seen:
                seen += await loop.run_in_executor(None, os.read, controller, 65536)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        await process.wait()
        os.close(controller)
    return bytes(seen)


@pytest.mark.root
async def test_plain_dump_escapes_on_a_terminal_and_keeps_bytes_on_a_pipe(lab: Lab) -> None:
    with serving(lab, lab.ns_ip):
        shown = await dump_on_a_terminal(lab)
        async with running_dump(f"netns/{lab.name}", "-p", str(PORT)) as dump:
            await dump.wait_for_stderr("Listening for traffic")
            await curl(url(lab.ns_ip, "/"), *HOSTILE_HEADERS)
            await dump.wait_for_stdout(lambda out: b"X-Title" in out)
            _status, piped = await dump.stop()
    assert b"\x1b" not in shown
    assert b"\x07" not in shown
    assert b"X-Title: \\x1b]0;pwned\\x07" in shown
    # A pipe or a file gets mirrord's output: the bytes as they were sent.
    assert f"X-Title: {OSC0}".encode() in piped


async def record(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui",
        "record",
        *args,
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 45)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_record_refuses_an_existing_file_without_force(tmp_path: Path) -> None:
    output = tmp_path / "kept.har"
    output.write_text("precious")
    status, stderr = await record("host", "-p", "80", "-o", str(output))
    assert (status, stderr) == (1, f"podtap: {output} already exists: add --force to replace it.\n")
    assert output.read_text() == "precious"


async def test_record_refuses_a_symlink_even_with_force(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "x.jsonl"
    link.symlink_to(victim)
    status, stderr = await record("host", "-p", "80", "-o", str(link), "--force")
    assert status == 1
    assert stderr == (
        f"podtap: {link} is a symbolic link: podtap does not write through one; "
        "give the real path.\n"
    )
    assert victim.read_text() == "precious"


@pytest.mark.root
async def test_record_with_force_replaces_a_file_and_makes_it_private(
    lab: Lab, tmp_path: Path
) -> None:
    output = tmp_path / "capture.jsonl"
    output.write_text("old")
    output.chmod(0o644)
    with serving(lab, lab.ns_ip):
        recording = asyncio.create_task(
            record(
                f"netns/{lab.name}", "-p", str(PORT), "-o", str(output), "--force", "--count", "1"
            )
        )
        async with asyncio.timeout(30):
            while not recording.done():
                # Until the capture is live, requests may go unseen: send until one counts.
                await curl(url(lab.ns_ip, "/"), "-H", "Authorization: Bearer s3cr3t")
                await asyncio.sleep(0.3)
        status, stderr = await recording
    assert status == 0, stderr
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    written = output.read_bytes()
    assert written.startswith(b'{"podtap":')
    assert b'"type":"data"' in written
