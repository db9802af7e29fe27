"""Secrets stay hidden in what find looks through and in big bodies: ``n`` does not land on a
masked WebSocket or gRPC message until ``s`` reveals it, and a body of megabytes full of
secret-looking names opens masked at once, is masked to its end as it is read, and leaves in
a HAR masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ui.driving import SIZE, fed, open_big_export, screen_text, shop_app
from tests.ui.fakes import Script, request, response, shop_session
from tui.model.flows import StreamMessage
from tui.model.masked_text import MaskedText
from tui.model.secrets import MASK
from tui.views.app import PodtapApp
from tui.views.screens.write_file import WriteFileScreen

pytestmark = pytest.mark.timeout(120)

SECRET = "s3cr3t-v4lu3-0042"


def notifications(app: PodtapApp) -> list[str]:
    return [str(notification.message) for notification in app._notifications]


def with_messages(app: PodtapApp) -> None:
    """A WebSocket exchange whose text message has a password, and a gRPC call whose string
    field has a session token: both SECRET, both masked on screen."""
    script = Script(start=1_767_225_700.0).open(70, "198.18.0.1", 46000)
    script.exchange(70, request("GET", "/live"), response(200, b"{}"))
    script.open(71, "198.18.0.1", 46001)
    script.exchange(71, request("POST", "/shop.Auth/Login"), response(200, b"\x00"))
    app.apply(script.updates())
    text = json.dumps({"type": "auth", "password": SECRET}).encode()
    field = f"session_token={SECRET}".encode()
    grpc = b"\x0a" + bytes([len(field)]) + field  # field 1, a string
    for conn, kind, data in ((70, "text", text), (71, "grpc", grpc)):
        connection = app.store.get(("local", conn))
        assert connection is not None
        connection.exchanges[-1].messages.append(StreamMessage("in", 1.0, kind, data, len(data)))
    app.draw()


async def test_find_does_not_land_on_masked_messages_until_they_are_revealed() -> None:
    app = shop_app()
    async with app.run_test(size=(160, 60)) as pilot:
        await fed(app)
        with_messages(app)
        main = app.main_screen
        await pilot.press("tab", "home", "down", "down")  # away from the two of them
        await pilot.press("f", *SECRET[:8], "enter", "n")
        await pilot.pause()
        assert f"No request shown mentions {SECRET[:8]!r}." in notifications(app)
        assert main.selected_exchange is not None
        assert main.selected_exchange.request.target not in ("/live", "/shop.Auth/Login")
        assert SECRET not in screen_text(app)
        # Revealed, the same text is on screen, and find goes to it.
        await pilot.press("s", "n")
        await pilot.pause()
        assert main.selected_exchange.request.target in ("/live", "/shop.Auth/Login")
        assert main.detail.matches
        assert SECRET in screen_text(app)


def masking(app: PodtapApp) -> list[MaskedText]:
    return [
        body.lines
        for body in app.main_screen.detail.rendered_bodies
        if isinstance(body.lines, MaskedText) and not body.lines.done
    ]


async def test_a_big_body_opens_masked_and_stays_masked_to_its_end(tmp_path: Path) -> None:
    app = shop_app(shop_session(finite=True))
    line = '{"order": %d, "access_token": "%s", "note": "%s"}\n'
    big = "".join(line % (n, SECRET, "x" * 40) for n in range(30_000)).encode()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await open_big_export(app, pilot, big, content_type="application/x-ndjson")
        main = app.main_screen
        # The first screen is masked; the rest is being masked, not shown raw.
        text = screen_text(app)
        assert f'"access_token": "{MASK}"' in text
        assert SECRET not in text
        assert SECRET not in main.detail.text
        while masking(app):
            assert SECRET not in main.detail.text
            await pilot.pause(0.05)
        assert "masking secrets in the rest" not in main.detail.text
        await pilot.press("enter", "end")
        await pilot.pause()
        text = screen_text(app)
        assert '"order": 29999' in text
        assert SECRET not in text
        assert main.detail.text.count(MASK) == 30_000
        # Written out, it is masked as a whole.
        path = tmp_path / "export.har"
        await pilot.press("escape", "w")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, WriteFileScreen)
        screen.path_input.value = str(path)
        await pilot.press("enter")
        await pilot.pause()
    written = path.read_bytes()
    assert SECRET.encode() not in written
    assert b'order\\": 29999' in written
