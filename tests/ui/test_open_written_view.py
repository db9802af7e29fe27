"""``w`` in the app: the filtered view written to a file in the format its extension names, a
confirmation of what was written, and that file opened again shows the same view."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.ui.driving import SIZE, fed, frozen_clock, screen_text, shop_app
from tests.ui.fakes import request, response, shop_script
from tui.model.store import Store
from tui.output.jsonl import JsonLinesWriter, RecordingHeader
from tui.sources.recording import RecordingSession, read_updates
from tui.views.app import PodtapApp
from tui.views.screens.main import MainScreen
from tui.views.screens.write_file import WriteFileScreen

pytestmark = pytest.mark.timeout(60)


def reopened(path: Path) -> Store:
    store = Store()
    store.apply(list(read_updates(path, [8080, 7000, 8443])))
    return store


def exchanges_of(store: Store) -> list[tuple[str, str, int | None, int]]:
    return sorted(
        (ex.request.method, ex.request.target, ex.status, conn.client_port)
        for conn in store.connections.values()
        for ex in conn.exchanges
    )


@pytest.mark.parametrize("suffix", ["har", "jsonl", "pcap"])
async def test_w_writes_the_filtered_view_and_says_what_it_wrote(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"view.{suffix}"
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("slash", *'~h "x-tenant: acme"', "enter")
        await pilot.pause()
        await pilot.press("w")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, WriteFileScreen)
        assert screen.path_input.value.endswith(".har")  # a default name is offered
        screen.path_input.value = str(path)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        messages = [str(n.message) for n in app._notifications]
        # alice's and bob's connections, and bob's order (acme tenants): 7 requests.
        assert f"Wrote 7 exchanges on 3 connections to {path} ({suffix.upper()})." in messages
        shown = exchanges_of_view(app.store)
    assert exchanges_of(reopened(path)) == shown
    if suffix == "har":
        entries = json.loads(path.read_bytes())["log"]["entries"]
        assert all(
            h["value"] != "Bearer token-of-alice" for e in entries for h in e["request"]["headers"]
        )


def exchanges_of_view(store: Store) -> list[tuple[str, str, int | None, int]]:
    return sorted(
        (ex.request.method, ex.request.target, ex.status, conn.client_port)
        for conn in store.visible_connections()
        for ex in store.visible_exchanges(conn.key)
    )


async def test_a_typed_path_replaces_the_offered_name(tmp_path: Path) -> None:
    path = tmp_path / "typed.jsonl"
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("w")
        await pilot.pause()
        await pilot.press(*str(path), "enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen), screen_text(app)
    assert files_in(tmp_path) == [path]


async def test_enter_alone_writes_the_offered_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("w", "enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen), screen_text(app)
    [written] = files_in(tmp_path)
    assert written.name.startswith("podtap-")
    assert written.suffix == ".har"


async def test_revealed_secrets_are_written_revealed(tmp_path: Path) -> None:
    path = tmp_path / "revealed.har"
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("s", "w")
        await pilot.pause()
        app.screen.path_input.value = str(path)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause()
    assert b"Bearer token-of-alice" in path.read_bytes()


async def test_a_path_that_cannot_be_written_keeps_the_prompt_with_the_reason(
    tmp_path: Path,
) -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("w")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, WriteFileScreen)
        screen.path_input.value = str(tmp_path / "view.txt")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
        assert isinstance(screen, WriteFileScreen)
        assert "must end in .jsonl, .har or .pcap" in screen_text(app)
        screen.path_input.value = str(tmp_path / "no" / "such" / "dir.har")
        await pilot.press("enter")
        await pilot.pause()
        assert "cannot write" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
    assert files_in(tmp_path) == []


def files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def tshark_uris(path: Path) -> list[str]:
    done = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "http.request", "-T", "fields", "-e", "http.request.uri"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()


async def write_view(pilot: Pilot[None], path: Path) -> None:
    """``w``, then the path, then ``enter``: what the app shows written to ``path``."""
    await pilot.press("w")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, WriteFileScreen)
    screen.path_input.value = str(path)
    await pilot.press("enter")
    await pilot.pause()


async def test_a_written_pcap_is_followed_by_tshark(tmp_path: Path) -> None:
    path = tmp_path / "all.pcap"
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await write_view(pilot, path)
    assert len(tshark_uris(path)) == 14


async def test_a_view_written_to_pcap_says_what_it_leaves_out(tmp_path: Path) -> None:
    # A stranger's recording: the shop's traffic, and a connection whose client is no address.
    script = shop_script()
    script.open(70, "client.example", 45000)
    script.exchange(70, request("GET", "/odd"), response(200, b"ok"))
    recording = tmp_path / "stranger.jsonl"
    with recording.open("wb") as stream:
        JsonLinesWriter(stream, RecordingHeader("0.1.0", "netns/shop", [8080])).write(
            script.updates()
        )
    path = tmp_path / "view.pcap"
    app = PodtapApp(RecordingSession(recording, []), clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await write_view(pilot, path)
        messages = [str(n.message) for n in app._notifications]
    lost = len(request("GET", "/odd")) + len(response(200, b"ok"))
    # Three events: the view is replayed with a message's last byte on its own (its own time).
    assert (
        f"Wrote 15 exchanges on 10 connections to {path} (PCAP); it leaves out 1 connection and "
        f"{lost} bytes of data (3 events) it cannot show as TCP packets (an address or port no "
        "packet can carry, or a connection it never saw open): write .jsonl to keep them."
    ) in messages, messages
    # The rest is all there, for podtap and for tshark alike.
    assert len(exchanges_of(reopened(path))) == 14
    if shutil.which("tshark"):
        assert len(tshark_uris(path)) == 14
