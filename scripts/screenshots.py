"""Save the README's screenshots (main view, a WebSocket conversation, a gRPC call, filter in
use, header inventory, help, requests view, endpoints view) as SVG.

Runs the real thing: the demo shop in a network namespace, its host clients, the agent and the
app (headless, at a fixed terminal size), then presses keys as a user would. Needs root.

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--warmup 8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.errors import UserError  # noqa: E402
from tui.demo import DemoEnvironment  # noqa: E402
from tui.sources.local import LocalSession  # noqa: E402
from tui.views.app import PodtapApp  # noqa: E402
from tui.views.screens.headers import HeaderInventoryScreen  # noqa: E402
from tui.views.screens.main import MainScreen  # noqa: E402
from tui.views.widgets.filter_bar import FilterBar  # noqa: E402

SIZE = (160, 45)


async def shoot(app: PodtapApp, out: Path, warmup: float) -> list[Path]:
    saved: list[Path] = []

    def save(name: str) -> None:
        saved.append(Path(app.save_screenshot(name, path=str(out))))

    async with app.run_test(size=SIZE) as pilot:
        await asyncio.sleep(warmup)
        main = app.main_screen
        # Walk down (as a user would) to the newest connection that carried several requests.
        for connection in list(main.connections_table.rows)[:30]:
            if connection.requests >= 3 and connection.protocol == "http":
                break
            await pilot.press("down")
        await pilot.pause(0.5)
        save("main.svg")
        if await _show_websocket(main):
            await pilot.pause(0.5)
            main.detail.scroll_end(animate=False, immediate=True)
            await pilot.pause(0.3)
            save("websocket.svg")
            main.detail.scroll_home(animate=False, immediate=True)

        if await _show_grpc(main):
            await pilot.pause(0.5)
            main.detail.scroll_end(animate=False, immediate=True)
            await pilot.pause(0.3)
            save("grpc.svg")
            main.detail.scroll_home(animate=False, immediate=True)

        await pilot.press("slash")
        main.query_one(FilterBar).input.cursor_blink = False
        await pilot.press(*'~c 5xx | ~h "x-user-id: alice"')
        await asyncio.sleep(1.0)
        save("filter.svg")
        await pilot.press("enter", "escape")

        await pilot.press("h")
        await pilot.pause(0.3)
        screen = app.screen
        if isinstance(screen, HeaderInventoryScreen):
            names = [stats.name.lower() for stats in screen.names.rows]
            if "x-user-id" in names:
                screen.names.move_cursor_to(names.index("x-user-id"))
        await asyncio.sleep(0.8)
        save("headers.svg")
        await pilot.press("escape")

        await pilot.press("question_mark")
        await pilot.pause(0.3)
        save("help.svg")
        await pilot.press("escape")

        await pilot.press("tab")
        await asyncio.sleep(1.0)
        await pilot.press("down", "down")
        await pilot.pause(0.5)
        save("requests.svg")
        await pilot.press("tab")

        await pilot.press("e")
        await asyncio.sleep(1.0)
        save("endpoints.svg")
        await pilot.press("escape", "q")
    return saved


async def _show_websocket(main: MainScreen, within: float = 20.0) -> bool:
    """Select a chat connection of the demo once its conversation is under way."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        for index, connection in enumerate(main.connections_table.rows):
            exchanges = connection.exchanges
            if connection.protocol == "ws" and exchanges and len(exchanges[0].messages) >= 8:
                main.connections_table.move_cursor_to(index)
                return True
        await asyncio.sleep(0.5)
    return False


async def _show_grpc(main: MainScreen, within: float = 20.0) -> bool:
    """Select the demo's gRPC connection and on it a streaming call with its messages."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        for index, connection in enumerate(main.connections_table.rows):
            if connection.protocol != "grpc":
                continue
            calls = [ex for ex in connection.exchanges if len(ex.messages) >= 4]
            if calls:
                main.connections_table.move_cursor_to(index)
                await asyncio.sleep(0.3)
                rows = list(main.exchanges_table.rows)
                busiest = max(calls, key=lambda call: len(call.messages))
                if busiest in rows:
                    main.exchanges_table.move_cursor_to(rows.index(busiest))
                return True
        await asyncio.sleep(0.5)
    return False


async def main_async(out: Path, warmup: float) -> list[Path]:
    with DemoEnvironment() as demo:
        session = LocalSession(demo.target, demo.ports)
        async with session:
            app = PodtapApp(session, title=f"podtap {demo.target}")
            return await shoot(app, out, warmup)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument(
        "--warmup",
        type=float,
        default=8.0,
        help="seconds of demo traffic before the first screenshot",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        saved = asyncio.run(main_async(args.out, args.warmup))
    except UserError as error:
        print(f"screenshots: {error}", file=sys.stderr)
        return 1
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
