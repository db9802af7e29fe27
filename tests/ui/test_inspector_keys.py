"""The inspector's keys through Textual's pilot, on scripted real traffic: the requests view
(``tab``), the endpoints view (``e``), find (``f``, ``n``, ``N``) and body views (``v``), with
a filter active and while following."""

from __future__ import annotations

import json
import re

import pytest

from tests.ui.driving import SIZE, fed, open_big_export, screen_text, shop_app
from tests.ui.fakes import ORDER_CONN, Script, request, response, shop_session
from tui.views.app import PodtapApp
from tui.views.screens.endpoints import EndpointsScreen
from tui.views.screens.help import HelpScreen
from tui.views.screens.main import MainScreen

pytestmark = pytest.mark.timeout(30)

NEWEST_FIRST = [
    "/api/users/mallory",
    "/api/orders",
    "/healthz",
    "/healthz",
    "/api/users/dave?expand=orders",
]


def request_targets(app: PodtapApp) -> list[str]:
    return [exchange.request.target for exchange in app.main_screen.requests_table.rows]


async def live_app(pilot_size: tuple[int, int] = SIZE) -> PodtapApp:
    return shop_app(shop_session(finite=False))


async def drained(app: PodtapApp, pilot: object) -> None:
    session = app.session
    while session.delivered < len(session.batches) or app.backlog:  # type: ignore[attr-defined]
        await pilot.pause(0.01)  # type: ignore[attr-defined]
    app.draw()
    app.main_screen.catch_up(now=True)
    await pilot.pause()  # type: ignore[attr-defined]


def late_exchange(conn: int, target: str, status: int = 200) -> Script:
    script = Script(start=1_767_225_700.0).open(conn, "198.18.0.1", 44000 + conn)
    return script.exchange(conn, request("GET", target), response(status, b"late"))


async def test_tab_lists_every_request_newest_first_and_back() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("tab")
        await pilot.pause()
        main = app.main_screen
        assert main.left_view == "requests"
        assert len(main.requests_table.rows) == 14
        assert request_targets(app)[:5] == NEWEST_FIRST
        text = screen_text(app)
        assert "requests view: 14 reqs" in text
        assert "proto" in text
        assert "00:00:00.189" in text  # the time of the newest request
        # The detail pane follows the selection.
        await pilot.press("down")
        await pilot.pause()
        assert "POST /api/orders HTTP/1.1" in screen_text(app)
        # Back to the connections, on the connection and request that were selected.
        await pilot.press("tab")
        await pilot.pause()
        assert str(main.left_view) == "connections"
        assert main.connections_table.cursor_key == ("local", ORDER_CONN)
        assert main.selected_exchange is not None
        assert main.selected_exchange.request.target == "/api/orders"
        assert "9/9 conns" in screen_text(app)


async def test_requests_view_with_a_filter_invert_and_noise() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("slash", "tab", "escape")  # a tab in the prompt switches nothing
        assert app.main_screen.left_view == "connections"
        await pilot.press("tab", "slash", *"~c 5xx", "enter")
        await pilot.pause()
        assert request_targets(app) == ["/api/orders"]
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert len(request_targets(app)) == 13
        assert "/api/orders" not in request_targets(app)
        await pilot.press("escape")  # clears the filter
        await pilot.pause()
        await pilot.press("H")
        await pilot.pause()
        assert "/healthz" not in request_targets(app)
        assert len(request_targets(app)) == 12
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.focused is app.main_screen.detail


async def test_requests_view_follows_and_keeps_a_browsed_row() -> None:
    app = await live_app()
    async with app.run_test(size=SIZE) as pilot:
        await drained(app, pilot)
        main = app.main_screen
        await pilot.press("tab")
        await pilot.pause()
        assert main.mode == "following"
        app.apply(late_exchange(40, "/late").updates())
        app.draw()
        main.catch_up(now=True)
        await pilot.pause()
        assert request_targets(app)[0] == "/late"
        assert main.selected_exchange is not None
        assert main.selected_exchange.request.target == "/late"  # the cursor followed
        await pilot.press("down", "down")
        assert str(main.mode) == "browsing"
        selected = main.selected_exchange
        app.apply(late_exchange(41, "/later").updates())
        app.draw()
        main.catch_up(now=True)
        await pilot.pause()
        assert request_targets(app)[0] == "/later"
        assert main.selected_exchange is selected  # rows arrived above; the cursor stayed


async def test_tab_keeps_the_list_unless_traffic_came_while_away() -> None:
    app = await live_app()
    async with app.run_test(size=SIZE) as pilot:
        await drained(app, pilot)
        main = app.main_screen
        await pilot.press("tab")
        await pilot.pause()
        listed = main.requests_table.rows
        await pilot.press("tab", "tab")
        await pilot.pause()
        assert main.requests_table.rows is listed  # nothing came: the same list, not a walk
        await pilot.press("tab")
        await pilot.pause()
        assert main.left_view == "connections"
        app.apply(late_exchange(42, "/while-away").updates())
        app.draw()
        await pilot.pause()
        await pilot.press("tab")
        await pilot.pause()
        assert request_targets(app)[0] == "/while-away"
        assert main.requests_table.rows is not listed


async def test_space_pauses_the_requests_view() -> None:
    app = await live_app()
    async with app.run_test(size=SIZE) as pilot:
        await drained(app, pilot)
        await pilot.press("tab", "space")
        app.apply(late_exchange(42, "/held").updates())
        app.draw()
        app.main_screen.catch_up(now=True)
        await pilot.pause()
        assert "/held" not in request_targets(app)
        assert "paused" in screen_text(app)
        await pilot.press("space")
        await pilot.pause()
        assert request_targets(app)[0] == "/held"


async def test_e_shows_endpoints_sorts_and_enter_filters_requests() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("e")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, EndpointsScreen)
        rows = screen.rows_table.rows
        assert [(row.method, row.route, row.requests) for row in rows][:3] == [
            ("GET", "/api/users/carol", 3),
            ("GET", "/api/users/bob", 3),
            ("GET", "/api/users/alice", 3),
        ]
        text = screen_text(app)
        assert "requests↓" in text
        assert "within 1%" in text
        orders = next(row for row in rows if row.route == "/api/orders")
        assert (orders.server_errors, orders.protocol) == (1, "http")
        # Sort by p50, largest first: the slow order comes first.
        await pilot.press(*["greater_than_sign"] * 5)
        await pilot.pause()
        assert screen.sort_by == "p50"
        assert screen.rows_table.rows[0].route == "/api/orders"
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert screen.rows_table.rows[-1].route == "/api/orders"
        await pilot.press("less_than_sign")
        assert screen.sort_by == "grpc err"
        await pilot.press("less_than_sign")
        assert screen.sort_by == "5xx"
        # enter: the requests view, filtered to the endpoint under the cursor.
        await pilot.press("home", "enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        main = app.main_screen
        assert main.left_view == "requests"
        assert main.filter_text == "~m POST & ~route /api/orders"
        assert request_targets(app) == ["/api/orders"]


async def test_endpoints_collapse_ids_and_escape_goes_back() -> None:
    app = await live_app()
    async with app.run_test(size=SIZE) as pilot:
        await drained(app, pilot)
        for conn, user in enumerate((7, 8, 9), start=50):
            app.apply(late_exchange(conn, f"/api/items/{user}", 404).updates())
        app.draw()
        await pilot.press("e")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, EndpointsScreen)
        items = next(row for row in screen.rows_table.rows if row.route == "/api/items/{id}")
        assert (items.requests, items.client_errors) == (3, 3)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert app.main_screen.filter_text == ""


async def test_f_finds_highlights_and_n_wraps_to_the_next_request() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        main = app.main_screen
        await pilot.press("tab", "f", *"inventory")
        await pilot.pause()
        # The newest request (mallory's 404) does not mention it: nothing marked yet.
        assert main.detail.matches == []
        assert "0 matches here" in screen_text(app)
        await pilot.press("enter", "n")
        await pilot.pause()
        assert main.selected_exchange is not None
        assert main.selected_exchange.request.target == "/api/orders"
        assert len(main.detail.matches) == 1
        assert "find 'inventory': 1/1" in screen_text(app)
        assert main.mode == "browsing"  # find stopped the following
        # n past the only match: round the list, back to the same request.
        await pilot.press("n")
        await pilot.pause()
        assert main.selected_exchange.request.target == "/api/orders"
        await pilot.press("escape")  # back to the list (the find text stays)
        await pilot.press("f", "escape")  # esc in the prompt drops it
        await pilot.pause()
        assert main.needle is None
        assert main.detail.matches == []


async def test_find_counts_every_match_and_n_n_goes_back() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        main = app.main_screen
        await pilot.press("tab", "f", *"carol", "enter")
        await pilot.pause()
        first = main.selected_exchange
        assert first is not None
        assert first.request.target == "/api/users/mallory"  # x-user-id: carol
        assert len(main.detail.matches) == 1
        await pilot.press("n")
        await pilot.pause()
        second = main.selected_exchange
        assert second is not None
        assert second.request.target == "/api/users/carol?expand=orders"
        # Path, x-user-id, session cookie (masked: not shown, not counted), body id.
        assert len(main.detail.matches) == 3
        await pilot.press("n", "n", "n")
        await pilot.pause()
        assert main.selected_exchange is not second
        await pilot.press("N")
        await pilot.pause()
        assert main.selected_exchange is second
        assert main.detail.current_match == 2  # its last match, going back


async def test_find_with_a_filter_stays_within_it() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        main = app.main_screen
        await pilot.press("slash", *"~m POST", "enter", "f", *"acme", "enter")
        await pilot.pause()
        await pilot.press("n", "n", "n")
        await pilot.pause()
        assert main.selected_exchange is not None
        assert main.selected_exchange.request.method == "POST"
        assert main.filter_text == "~m POST"


async def test_find_while_following_live_traffic() -> None:
    app = await live_app()
    async with app.run_test(size=SIZE) as pilot:
        await drained(app, pilot)
        main = app.main_screen
        await pilot.press("f", *"late", "enter")
        assert main.mode == "following"
        app.apply(late_exchange(43, "/late-arrival").updates())
        app.draw()
        main.catch_up(now=True)
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert main.selected_exchange is not None
        assert main.selected_exchange.request.target == "/late-arrival"
        assert len(main.detail.matches) >= 2  # the path, and the body "late"


async def test_v_cycles_the_body_views() -> None:
    app = shop_app()
    async with app.run_test(size=(160, 60)) as pilot:
        await fed(app)
        main = app.main_screen
        await pilot.press("tab", "down")  # the POST with a JSON body
        await pilot.pause()
        assert '"quantity": 2' in screen_text(app)
        seen = []
        for _ in range(7):
            await pilot.press("v")
            await pilot.pause()
            seen.append(main.body_mode)
            text = screen_text(app)
            if main.body_mode == "hex":
                assert "00000000  7b 22 69 74 65 6d" in text
            if main.body_mode == "form":
                assert "(text: not a URL-encoded form)" in text
        assert seen == ["json", "markup", "form", "multipart", "text", "hex", "auto"]


async def test_a_10_mb_body_opens_and_scrolls() -> None:
    app = shop_app(shop_session(finite=True))
    big = json.dumps([{"order": n, "note": "x" * 60} for n in range(120_000)]).encode()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await open_big_export(app, pilot, big)
        main = app.main_screen
        assert main.selected_exchange.response is not None
        assert main.selected_exchange.response.body_length == len(big)
        text = screen_text(app)
        assert "not formatted" in text
        await pilot.press("enter", "end")
        await pilot.pause()
        assert main.detail.row_count > 100_000
        assert '"order": 119999' in screen_text(app)


async def test_help_lists_the_new_keys() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for key, description in (
            ("tab", "View"),
            ("e", "Endpoints"),
            ("f", "Find"),
            ("n", "Next match"),
            ("N", "Previous match"),
            ("v", "Body"),
        ):
            assert re.search(rf"(^|\s){key}\s+{description}\s", text, re.MULTILINE), key
        await pilot.press("escape", "e", "question_mark")
        await pilot.pause()
        text = screen_text(app)
        assert "Sort by the next column" in text
        assert "Show the requests view filtered to this endpoint" in text


async def test_the_requests_view_shows_the_protocol_a_decoder_decided() -> None:
    # HTTP/2, gRPC and WebSocket decoders set Connection.protocol and yield the same
    # exchanges: the view reads the column from there, with no per-protocol code.
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        call = Script(start=1_767_225_700.0).open(70, "198.18.0.1", 46000)
        call.exchange(70, request("POST", "/shop.Orders/Create"), response(200, b"\x00"))
        app.apply(call.updates())
        connection = app.store.get(("local", 70))
        assert connection is not None
        connection.protocol = "grpc"
        app.draw()
        await pilot.press("tab")
        await pilot.pause()
        assert request_targets(app)[0] == "/shop.Orders/Create"
        first_row = screen_text(app).splitlines()[2]
        assert "/shop.Orders/Create" in first_row
        assert first_row.split("│")[1].split()[-1] == "grpc"
