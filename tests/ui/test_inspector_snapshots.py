"""Snapshots of the requests view and the endpoints view, from fixed traffic, a frozen clock
and a fixed terminal size (update with ``pytest tests/ui --snapshot-update`` after checking
them)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from tests.ui.driving import SIZE, fed, shop_app

pytestmark = pytest.mark.timeout(60)

SnapCompare = Callable[..., bool]


async def requests_view(pilot: Pilot[None]) -> None:
    await fed(pilot.app)  # type: ignore[arg-type]
    await pilot.press("tab", "down")
    await pilot.pause()


async def endpoints_view(pilot: Pilot[None]) -> None:
    await fed(pilot.app)  # type: ignore[arg-type]
    await pilot.press("e")
    await pilot.pause()


async def finding(pilot: Pilot[None]) -> None:
    await fed(pilot.app)  # type: ignore[arg-type]
    await pilot.press("tab", "f", *"inventory", "enter", "n")
    await pilot.pause()


def test_requests_view(snap_compare: SnapCompare) -> None:
    assert snap_compare(shop_app(), terminal_size=SIZE, run_before=requests_view)


def test_endpoints_view(snap_compare: SnapCompare) -> None:
    assert snap_compare(shop_app(), terminal_size=SIZE, run_before=endpoints_view)


def test_find_marks_matches(snap_compare: SnapCompare) -> None:
    assert snap_compare(shop_app(), terminal_size=SIZE, run_before=finding)
