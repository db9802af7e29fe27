"""Driving the app in tests: a frozen clock, the screen as plain text, waiting for the feed."""

from __future__ import annotations

from tests.ui.fakes import T0, FakeSession, shop_session
from tui.views.app import PodtapApp

SIZE = (160, 45)
NOW = T0 + 75.0
"""The frozen wall clock: 75 s after the scripted traffic began (ages read 1m)."""


def frozen_clock() -> float:
    return NOW


def shop_app(session: FakeSession | None = None) -> PodtapApp:
    return PodtapApp(session or shop_session(finite=True), clock=frozen_clock)


async def fed(app: PodtapApp) -> None:
    """Wait until a finite session has been drained and drawn."""
    await app.stream_finished.wait()
    app.draw()


def screen_text(app: PodtapApp) -> str:
    """What the terminal shows, as text (the active screen and any screens under a modal)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in strips)
