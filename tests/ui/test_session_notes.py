"""What a session says in passing (a pod that joined, a recording cut short) reaches the
screen as a notification: said, not only kept in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.driving import SIZE, fed, frozen_clock, shop_app
from tests.ui.fakes import FakeSession, shop_updates
from tui.model.updates import SessionNote
from tui.output.jsonl import JsonLinesWriter, RecordingHeader
from tui.sources.recording import RecordingSession
from tui.views.app import PodtapApp

pytestmark = pytest.mark.timeout(30)


def notifications(app: PodtapApp) -> list[str]:
    return [str(notification.message) for notification in app._notifications]


async def test_a_note_from_the_session_is_shown() -> None:
    said = "Pod web-7d9c-2 is ready: tapping it too."
    app = shop_app(FakeSession([shop_updates(), [SessionNote(said)]], finite=True))
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.pause()
        assert notifications(app) == [said]


async def test_a_recording_cut_short_says_so_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    with path.open("wb") as stream:
        JsonLinesWriter(stream, RecordingHeader("0.1.0", "netns/shop", [8080])).write(
            shop_updates()
        )
        stream.write(b'{"type": "data", "co')
    app = PodtapApp(RecordingSession(path, []), clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.pause()
        (said,) = notifications(app)
        assert said.startswith("cut.jsonl: its last line (line ")
        assert said.endswith("bytes) is cut short, as when podtap stops mid-write, and is left out")


async def test_a_note_is_shown_as_written_never_as_markup_or_controls() -> None:
    """Notes carry text from the cluster (pod names, API errors): brackets are no markup,
    control characters are escaped."""
    said = "Following the pods failed once: [bold]403[/] \x1b[2J forbidden."
    app = shop_app(FakeSession([shop_updates(), [SessionNote(said)]], finite=True))
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.pause()
        assert notifications(app) == [
            "Following the pods failed once: [bold]403[/] \\x1b[2J forbidden."
        ]
        (notification,) = app._notifications
        assert notification.markup is False


async def test_a_burst_of_notes_is_shown_as_a_few_and_a_count() -> None:
    """A hundred replicas rolled out at once must not stack a hundred notifications."""
    notes = [SessionNote(f"Pod web-{n} is ready: tapping it too.") for n in range(100)]
    app = shop_app(FakeSession([shop_updates(), notes], finite=True))
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.pause()
        shown = notifications(app)
        assert shown[:3] == [f"Pod web-{n} is ready: tapping it too." for n in range(3)]
        assert shown[3:] == ["… and 97 more notes from the session."]
