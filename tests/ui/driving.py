"""Driving the app in tests: a frozen clock, the screen as plain text, waiting for the feed."""

from __future__ import annotations

from textual.pilot import Pilot

from tests.ui.fakes import T0, FakeSession, Script, request, response, shop_session
from tui.model.flows import Exchange
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


async def open_big_export(
    app: PodtapApp, pilot: Pilot[None], body: bytes, content_type: str = "application/json"
) -> Exchange:
    """Add a ``GET /export`` answered with ``body`` to a fed shop app, and show it in the
    detail pane (the store's body cap raised to hold it whole)."""
    app.store.body_cap = max(app.store.body_cap, len(body) + 1)
    script = Script(start=1_767_225_700.0).open(60, "198.18.0.1", 45000)
    script.exchange(60, request("GET", "/export"), response(200, body, content_type=content_type))
    app.apply(script.updates())
    app.draw()
    await pilot.press("tab")
    await pilot.pause()
    selected = app.main_screen.selected_exchange
    assert selected is not None
    assert selected.request.target == "/export"
    return selected
