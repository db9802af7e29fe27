"""The app against hostile traffic and input, through Textual's pilot: every secret kind masked
in the detail pane, the raw view and the clipboard until ``s``; ``w`` asks before replacing a
file; nothing typed in the filter bar takes the app down."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile_traffic import MARK, SECRET_KINDS, escape_script, secret_script
from tests.ui.driving import SIZE, fed, screen_text, shop_app
from tests.ui.fakes import FakeSession
from tui.views.app import PodtapApp
from tui.views.screens.main import MainScreen
from tui.views.screens.write_file import WriteFileScreen

pytestmark = pytest.mark.timeout(60)


def secrets_app() -> PodtapApp:
    return shop_app(FakeSession([secret_script().updates()], finite=True))


async def every_pane(app: PodtapApp, pilot: object) -> str:
    """The detail pane of every exchange, then the raw view of every connection, as text."""
    main = app.main_screen
    shown: list[str] = []
    for raw in (False, True):
        main.raw_mode = raw
        for row in range(len(main.connections_table.rows)):
            main.connections_table.move_cursor_to(row)
            await pilot.pause()  # type: ignore[attr-defined]
            main._draw_detail()
            shown.append(main.detail.text)
    main.raw_mode = False
    return "\n".join(shown)


async def test_every_secret_kind_is_masked_in_the_detail_and_raw_views_until_s() -> None:
    app = secrets_app()
    async with app.run_test(size=(200, 120)) as pilot:
        await fed(app)
        masked = await every_pane(app, pilot)
        assert MARK not in masked
        assert "••••••" in masked
        assert MARK not in screen_text(app)
        await pilot.press("s")
        revealed = await every_pane(app, pilot)
    # Each kind shows its secret again, in the detail pane or the raw view (or both).
    assert revealed.count(MARK) >= len(SECRET_KINDS)


async def test_copy_as_curl_copies_secrets_only_when_revealed() -> None:
    app = secrets_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        main = app.main_screen
        copied: dict[bool, list[str]] = {False: [], True: []}
        for row in range(len(main.connections_table.rows)):
            main.connections_table.move_cursor_to(row)
            await pilot.pause()
            for reveal in (False, True):
                main.reveal_secrets = reveal
                main.action_copy_curl()
                await pilot.pause()
                notified = str(list(app._notifications)[-1].message)
                copied[reveal].append(app.clipboard + notified)
    assert not any(MARK in command for command in copied[False])
    assert sum(MARK in command for command in copied[True]) == sum(
        kind.in_request for kind in SECRET_KINDS
    )


async def test_escape_sequences_are_shown_escaped_in_every_pane() -> None:
    app = shop_app(FakeSession([escape_script().updates()], finite=True))
    async with app.run_test(size=(200, 60)) as pilot:
        await fed(app)
        panes = await every_pane(app, pilot)
        await pilot.press("h")
        await pilot.pause()
        inventory = screen_text(app)
    for text in (panes, inventory):
        assert "\x1b" not in text
        assert "\x07" not in text
    assert "clip\\x1b]52;c;cGF5bG9hZA==\\x1b\\" in panes
    assert "title\\x1b]0;pwned\\x07body" in panes
    assert "\\x1b]52" in inventory


async def write_to(app: PodtapApp, pilot: object, path: Path) -> None:
    await pilot.press("w")  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]
    screen = app.screen
    assert isinstance(screen, WriteFileScreen)
    screen.path_input.value = str(path)
    await pilot.press("enter")  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


async def test_w_asks_before_replacing_a_file_and_writes_it_private(tmp_path: Path) -> None:
    path = tmp_path / "view.har"
    path.write_text("precious")
    path.chmod(0o644)
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await write_to(app, pilot, path)
        screen = app.screen
        assert isinstance(screen, WriteFileScreen)  # still asking
        assert "already exists" in screen.error.render().plain  # type: ignore[union-attr]
        assert "Press enter again to replace it" in screen_text(app)
        assert path.read_text() == "precious"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
    assert path.read_bytes().startswith(b"{")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_w_refuses_a_symlink_in_one_sentence(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "view.jsonl"
    link.symlink_to(victim)
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await write_to(app, pilot, link)
        await pilot.press("enter")  # enter again does not make a link writable
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, WriteFileScreen)
        assert "is a symbolic link" in screen.error.render().plain  # type: ignore[union-attr]
    assert victim.read_text() == "precious"


NASTY_FILTERS = [
    "[/]",
    "[bold red]x",
    "~p '[/'",
    "(" * 500,
    "!" * 500,
    '~h "[b]: [/b]"',
    "~p '^/(\\w+/?)+$'",
    "~src :²",
    "\x1b]0;pwned\x07",
    "~b '(?=x)'",
    "~c 9xx",
]


async def test_nothing_typed_in_the_filter_bar_takes_the_app_down() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        bar = app.main_screen.filter_bar
        for text in NASTY_FILTERS:
            await pilot.press("slash")
            bar.input.value = text
            await pilot.pause()
            await pilot.press("enter", "escape")
            await pilot.pause()
            assert "\x1b" not in screen_text(app)
        await pilot.press("slash", *"~c 404", "enter")
        await pilot.pause()
        assert app.main_screen.filter_text == "~c 404"  # the app still works

        pieces = st.sampled_from([*"()!&|~\"'[]/\\:^$*+?.x ", "~p ", "~h ", "[/]", "[b]"])

        @settings(
            max_examples=300,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(st.lists(pieces, max_size=30).map("".join) | st.text(max_size=60))
        def typed(text: str) -> None:
            valid, _parsed = bar._check(text)  # what every keystroke runs
            bar.problem.render()  # what is drawn next
            assert isinstance(valid, bool)

        bar.open("")
        typed()
        await pilot.pause()
        assert app.is_running
