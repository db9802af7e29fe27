"""A live table redraws only the lines of the screen whose content changed, and a focus moved
between panes redraws the two panes, not the screen: under load most rows on screen stay as they
were, and every line redrawn costs the compositor's time."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from rich.console import RenderableType
from textual._compositor import LayoutUpdate
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widget import Widget

from tests.ui.driving import SIZE, fed, shop_app
from tui.views.app import PodtapApp
from tui.views.widgets.live_table import Column, LiveTable

pytestmark = pytest.mark.timeout(30)

Row = tuple[int, int]
"""(id, count): a connection and how many requests it made."""


class CountingTable(LiveTable[Row, int]):
    """A real table that notes which lines of the screen it was asked to render."""

    def __init__(self) -> None:
        super().__init__(
            [Column("id", 6, justify="right"), Column("requests", 10, flexible=True)],
            lambda row: (str(row[0]), str(row[1])),
            lambda row: row[0],
        )
        self.rendered: list[int] = []

    def render_line(self, y: int) -> Strip:
        self.rendered.append(y)
        return super().render_line(y)


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield CountingTable()


def newest_first(ids: range, counts: dict[int, int] | None = None) -> list[Row]:
    return [(i, (counts or {}).get(i, 1)) for i in reversed(ids)]


def shown(app: TableApp) -> list[str]:
    """The table's lines as text, without the scrollbar (the last column)."""
    return [" ".join(strip.text[:-1].split()) for strip in app.screen._compositor.render_strips()]


async def drawn(app: TableApp, table: CountingTable, pilot: object) -> list[int]:
    """The lines rendered for the next frame."""
    table.rendered.clear()
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]
    return sorted(set(table.rendered))


async def test_rows_arriving_above_the_cursor_redraw_no_line_and_a_change_one_line() -> None:
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(CountingTable)
        table.show(newest_first(range(100)))
        await pilot.pause()
        table.focus()
        table.move_cursor_to(20)  # below the screen: the view scrolls to keep it in sight
        await pilot.pause()
        before = shown(app)

        # Five new rows on top: the view scrolls along, the screen shows the same rows.
        table.show(newest_first(range(105)))
        assert await drawn(app, table, pilot) == []
        assert shown(app) == before

        # One row on screen made a request: its line only.
        on_screen = table.rows[int(table.scroll_y) + 3]
        table.show(newest_first(range(105), {on_screen[0]: 2}))
        assert await drawn(app, table, pilot) == [4]  # line 0 is the header
        assert f"{on_screen[0]} 2" in shown(app)


async def test_the_lines_redrawn_show_what_a_full_redraw_would() -> None:
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(CountingTable)
        steps: Sequence[tuple[list[Row], bool]] = [
            (newest_first(range(30)), True),
            (newest_first(range(33), {31: 7}), False),  # above the first row: follows it
            (newest_first(range(5, 33)), False),  # oldest gone
            (newest_first(range(3)), False),  # fewer rows than lines: blank lines below
            ([], False),
            (newest_first(range(40)), True),
        ]
        for rows, stick in steps:
            table.show(rows, stick_to_first=stick)
            await pilot.pause()
            partly = shown(app)
            table.refresh()
            await pilot.pause()
            assert shown(app) == partly, rows[:3]
        table.action_cursor(3)
        await pilot.pause()
        partly = shown(app)
        table.refresh()
        await pilot.pause()
        assert shown(app) == partly


async def test_moving_the_focus_repaints_the_two_panes_not_the_whole_screen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.pause()
        screen = app.main_screen
        compositor = screen._compositor
        full_repaints: list[bool] = []
        whole = compositor.render_full_update

        def noted_full_repaint(simplify: bool = False) -> LayoutUpdate:
            full_repaints.append(simplify)
            return whole(simplify)

        monkeypatch.setattr(compositor, "render_full_update", noted_full_repaint)
        unfocused = border_colour(app, screen.exchanges_table)

        await pilot.press("enter")
        await pilot.pause()
        assert screen.focused is screen.exchanges_table
        assert full_repaints == []
        assert border_colour(app, screen.exchanges_table) != unfocused  # the pane says so

        await pilot.press("escape")
        await pilot.pause()
        assert app.focused is screen.connections_table
        assert full_repaints == []
        assert border_colour(app, screen.exchanges_table) == unfocused


def border_colour(app: PodtapApp, pane: Widget) -> object:
    """The colour of the top-left corner of ``pane``'s border, as drawn on the screen."""
    x, y = pane.region.x, pane.region.y
    line = app.screen._compositor.render_strips()[y]
    corner = next(iter(line.crop(x, x + 1)))
    assert corner.text == "╭"
    return corner.style.color if corner.style else None


async def test_the_scrollbar_is_redrawn_only_when_its_thumb_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(CountingTable)
        table.show(newest_first(range(1000)))
        await pilot.pause()
        assert thumb_lines(app) == [0]
        bar = table.vertical_scrollbar
        drawn: list[float] = []
        render = bar.render

        def noted_render() -> RenderableType:
            drawn.append(bar.position)
            return render()

        monkeypatch.setattr(bar, "render", noted_render)

        table.show(newest_first(range(1003)))  # a few more rows: the same thumb at the top
        await pilot.pause()
        assert drawn == []
        assert thumb_lines(app) == [0]

        table.action_last()  # the thumb goes to the bottom
        await pilot.pause()
        assert drawn
        assert thumb_lines(app) == [11]


def thumb_lines(app: TableApp) -> list[int]:
    """The lines of the screen where the scrollbar (the last column) draws its thumb."""
    lines = []
    for y, strip in enumerate(app.screen._compositor.render_strips()):
        *_, cell = strip.crop(39, 40)
        if cell.text.strip() or (cell.style is not None and cell.style.reverse):
            lines.append(y)
    return lines
