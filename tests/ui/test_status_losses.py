"""The status bar says every loss, each in its unit, as soon as the stream tells of it."""

from __future__ import annotations

import pytest

from agent.events import EventsLost
from tests.ui.driving import SIZE, fed, screen_text, shop_app
from tests.ui.fakes import FakeSession, Script, request, response
from tui.model.updates import AgentEvent, Update

pytestmark = pytest.mark.timeout(30)


async def test_lost_events_and_dropped_packets_show_in_the_status_bar() -> None:
    script = Script().open(1, "198.18.0.1", 42000)
    script.exchange(1, request("GET", "/a"), response(200, b"ok"))
    script.stats(kernel_drops=40, gaps=2, gap_bytes=100)
    lost: list[Update] = [*script.updates()]
    lost.append(
        AgentEvent(
            "local",
            EventsLost(
                ts=script.now,
                seq=script.seq + 12_001,
                first_seq=script.seq + 1,
                count=12_000,
                reason="slow-client",
            ),
        )
    )
    app = shop_app(FakeSession([lost], finite=True))
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.pause()
        assert "lost ~12k events, 40 pkts, 2 gaps" in screen_text(app)
