"""Snapshots of the four screens people look at, from fixed traffic, a frozen clock and a
fixed terminal size (update with ``pytest tests/ui --snapshot-update`` after checking them)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from tests.ui.driving import SIZE, fed, shop_app
from tui.views.widgets.filter_bar import FilterBar

pytestmark = pytest.mark.timeout(60)

SnapCompare = Callable[..., bool]


async def drained(pilot: Pilot[None]) -> None:
    await fed(pilot.app)  # type: ignore[arg-type]
    await pilot.pause()


async def filtering(pilot: Pilot[None]) -> None:
    await drained(pilot)
    await pilot.press("slash")
    pilot.app.screen.query_one(FilterBar).input.cursor_blink = False
    await pilot.press(*'~h "x-tenant: acme" | ~c 5xx')
    await pilot.pause()


async def inventory(pilot: Pilot[None]) -> None:
    await drained(pilot)
    await pilot.press("h", "down")
    await pilot.pause()


async def helping(pilot: Pilot[None]) -> None:
    await drained(pilot)
    await pilot.press("question_mark")
    await pilot.pause()


def test_main_view(snap_compare: SnapCompare) -> None:
    assert snap_compare(shop_app(), terminal_size=SIZE, run_before=drained)


def test_filter_in_use(snap_compare: SnapCompare) -> None:
    assert snap_compare(shop_app(), terminal_size=SIZE, run_before=filtering)


def test_header_inventory(snap_compare: SnapCompare) -> None:
    assert snap_compare(shop_app(), terminal_size=SIZE, run_before=inventory)


def test_help(snap_compare: SnapCompare) -> None:
    assert snap_compare(shop_app(), terminal_size=SIZE, run_before=helping)
