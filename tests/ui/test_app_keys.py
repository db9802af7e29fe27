"""Every key of the app, pressed through Textual's pilot against scripted real traffic."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events

from tests.ui.driving import SIZE, fed, screen_text, shop_app
from tests.ui.fakes import (
    LINE_CONN,
    ORDER_CONN,
    T0,
    TLS_CONN,
    USER_CONNS,
    FakeSession,
    Script,
    request,
    response,
    shop_session,
)
from tui.sources.recording import RecordingSession
from tui.views.app import PodtapApp
from tui.views.screens.headers import HeaderInventoryScreen
from tui.views.screens.help import HelpScreen
from tui.views.screens.main import MainScreen
from tui.views.widgets.filter_bar import FilterBar

pytestmark = pytest.mark.timeout(30)

ALL_CONNECTIONS = [8, 7, 6, 5, 4, 3, 2, 1, 0]


def shown_ids(app: object) -> list[int]:
    main = app.main_screen  # type: ignore[attr-defined]
    return [connection.conn for connection in main.connections_table.rows]


async def test_connections_newest_first_with_their_columns() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.pause()
        assert shown_ids(app) == ALL_CONNECTIONS
        text = screen_text(app)
        assert "198.18.0.1:42000" in text
        assert "reset" in text
        assert "1m" in text  # age from the injected clock
        assert "end of stream" in text  # a finite session: the app stays open


async def test_the_selected_exchange_shows_request_response_and_json() -> None:
    app = shop_app()
    async with app.run_test(size=(160, 80)) as pilot:
        await fed(app)
        main = app.main_screen
        main.connections_table.move_cursor_to(ALL_CONNECTIONS.index(ORDER_CONN))
        await pilot.pause()
        assert [ex.request.method for ex in main.exchanges_table.rows] == ["GET", "POST"]
        await pilot.press("enter", "down")
        await pilot.pause()
        text = screen_text(app)
        assert "POST /api/orders HTTP/1.1" in text
        assert '"quantity": 2' in text  # pretty-printed JSON body
        assert "500 Internal Server Error" in text
        assert "inventory unavailable" in text


async def test_tls_connection_shows_sni_and_alpn() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        app.main_screen.connections_table.move_cursor_to(ALL_CONNECTIONS.index(TLS_CONN))
        await pilot.pause()
        assert app.main_screen.selected_connection is not None
        assert app.main_screen.selected_connection.conn == TLS_CONN
        text = screen_text(app)
        assert "payments.internal" in text
        assert "h2, http/1.1" in text


async def test_slash_filters_and_invalid_input_is_shown_not_applied() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("slash")
        bar = app.main_screen.query_one(FilterBar)
        assert bar.is_open
        await pilot.press(*"~c 500")
        await pilot.pause()
        assert shown_ids(app) == [ORDER_CONN]
        await pilot.press(*" & (")
        await pilot.pause()
        assert bar.input.has_class("-unparsable")
        assert "✗ column 11" in screen_text(app)
        assert shown_ids(app) == [ORDER_CONN]  # the last valid filter stays in force
        for _ in " & (":
            await pilot.press("backspace")
        await pilot.press("enter")
        await pilot.pause()
        assert not bar.is_open
        assert "filter ~c 500" in screen_text(app)
        assert shown_ids(app) == [ORDER_CONN]


async def test_keys_typed_right_after_slash_land_in_the_prompt() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        assert app._driver is not None
        # One burst, as a terminal delivers a paste or a fast typist: no waiting in between.
        typed = "~c 404 | ~p /orders"  # "/" inside the expression is just a character
        names = {"~": "tilde", " ": "space", "|": "vertical_line", "/": "slash"}
        app._driver.send_message(events.Key("slash", "/"))
        for char in typed:
            app._driver.send_message(events.Key(names.get(char, char), char))
        app._driver.send_message(events.Key("enter", None))
        for _ in range(100):
            await pilot.pause(0.05)
            if not app.main_screen.filter_bar.is_open:
                break
        assert app.main_screen.filter_text == typed
        assert not app.main_screen.reveal_secrets
        assert shown_ids(app) == [ORDER_CONN]


async def test_escape_in_the_prompt_restores_the_previous_filter() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("slash", *"~c 404", "enter")
        await pilot.press("slash", "backspace", "backspace", "backspace", *"500")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.main_screen.filter_text == "~c 404"


async def test_bang_inverts_and_escape_clears() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert shown_ids(app) == ALL_CONNECTIONS  # nothing to invert: said so, nothing hidden
        await pilot.press("slash", *"~p healthz", "enter")
        await pilot.pause()
        assert shown_ids(app) == [7, 6]
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert 6 not in shown_ids(app)
        assert 2 in shown_ids(app)
        assert "filter !(~p healthz)" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert shown_ids(app) == ALL_CONNECTIONS
        assert app.main_screen.filter_text == ""


async def test_capital_h_hides_probes() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("H")
        await pilot.pause()
        assert 6 not in shown_ids(app)
        assert 7 not in shown_ids(app)
        assert "noise hidden" in screen_text(app)
        await pilot.press("H")
        await pilot.pause()
        assert shown_ids(app) == ALL_CONNECTIONS


async def test_space_pauses_then_follows() -> None:
    session = shop_session(finite=False)
    app = shop_app(session)
    async with app.run_test(size=SIZE) as pilot:
        while session.delivered < len(session.batches) or app.backlog:
            await pilot.pause(0.01)
        app.draw()
        await pilot.press("space")
        assert "paused" in screen_text(app)
        late = Script(start=1_767_225_700.0)
        late.open(40, "198.18.0.1", 44000).exchange(40, request("GET", "/late"), response(204))
        app.apply(late.updates())
        app.draw()
        await pilot.pause()
        assert 40 not in shown_ids(app)
        await pilot.press("space")
        await pilot.pause()
        assert shown_ids(app)[0] == 40
        assert "following" in screen_text(app)


async def test_moving_the_cursor_stops_following() -> None:
    session = shop_session(finite=False)
    app = shop_app(session)
    async with app.run_test(size=SIZE) as pilot:
        while session.delivered < len(session.batches) or app.backlog:
            await pilot.pause(0.01)
        app.draw()
        await pilot.press("down", "down")
        main = app.main_screen
        assert main.mode == "browsing"
        selected = main.connections_table.cursor_key
        late = Script(start=1_767_225_700.0).open(41, "198.18.0.1", 44001)
        app.apply(late.updates())
        app.draw()
        await pilot.pause()
        assert shown_ids(app)[0] == 41
        assert main.connections_table.cursor_key == selected


async def test_r_shows_raw_bytes() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        app.main_screen.connections_table.move_cursor_to(ALL_CONNECTIONS.index(USER_CONNS["alice"]))
        await pilot.press("r")
        await pilot.pause()
        text = screen_text(app)
        assert "client → server" in text
        assert "GET /api/users/alice?expand=orders HTTP/1.1" in text
        await pilot.press("escape")
        assert not app.main_screen.raw_mode


async def test_raw_view_of_a_line_protocol() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        app.main_screen.connections_table.move_cursor_to(ALL_CONNECTIONS.index(LINE_CONN))
        await pilot.pause()
        text = screen_text(app)
        assert "PING" in text
        assert "+PONG" in text


async def test_secrets_are_masked_until_s() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        app.main_screen.connections_table.move_cursor_to(ALL_CONNECTIONS.index(USER_CONNS["bob"]))
        await pilot.pause()
        text = screen_text(app)
        assert "Authorization" in text
        assert "token-of-bob" not in text
        assert "session=bob-cookie" not in text
        await pilot.press("s")
        await pilot.pause()
        text = screen_text(app)
        assert "token-of-bob" in text
        assert "session=bob-cookie" in text


async def test_c_copies_the_request_as_curl() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        app.main_screen.connections_table.move_cursor_to(ALL_CONNECTIONS.index(ORDER_CONN))
        await pilot.press("c")
        await pilot.pause()
        copied = app.clipboard
        assert copied.startswith("curl")
        assert "/api/users/mallory" in copied
        assert any("curl" in n.message for n in app._notifications)


async def test_m_copies_no_filter_that_would_steal_every_request() -> None:
    # Two curl requests alike but for their path: no header tells them apart.
    script = Script().hello()
    for conn, path in enumerate(["/a", "/b"]):
        script.open(conn, "10.0.0.9", 40000 + conn)
        script.exchange(conn, request("GET", path), response(200, b"ok"))
    app = shop_app(FakeSession([script.updates()], finite=True))
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("m")
        await pilot.pause()
        assert app.clipboard == ""
        assert any("tells it apart" in str(n.message) for n in app._notifications)


async def test_m_copies_the_mirrord_config_for_the_request() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        app.main_screen.connections_table.move_cursor_to(ALL_CONNECTIONS.index(USER_CONNS["carol"]))
        await pilot.press("m")
        await pilot.pause()
        copied = app.clipboard
        assert '"steal"' in copied
        assert "header_filter" in copied
        assert "carol" in copied
        # The config needs the real value; the notification shows it masked like the screen.
        assert any("authorization: Bearer ••••••" in n.message for n in app._notifications)
        assert not any("token-of-carol" in n.message for n in app._notifications)


async def test_ctrl_l_clears() -> None:
    # A live capture: once cleared, it waits for what comes next.
    session = shop_session(finite=False)
    app = shop_app(session)
    async with app.run_test(size=SIZE) as pilot:
        while session.delivered < len(session.batches) or not shown_ids(app):
            await pilot.pause(0.05)
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert shown_ids(app) == []
        assert "waiting for connections" in screen_text(app)


async def test_an_empty_recording_does_not_say_it_is_waiting(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    app = PodtapApp(RecordingSession(empty))
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "no connections: the stream has ended" in text
        assert "waiting for connections" not in text


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
async def test_q_and_ctrl_c_quit_at_once(key: str) -> None:
    # ctrl+c quits as it stops dump and record, not with a hint to press ctrl+q instead.
    app = shop_app(shop_session(finite=False))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(key)
        await pilot.pause()
        assert app._exit, screen_text(app)


async def test_q_quits() -> None:
    session = shop_session(finite=False)
    app = shop_app(session)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_question_mark_lists_every_key_and_operator() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for binding in MainScreen.BINDINGS:
            assert binding.description in text  # type: ignore[union-attr]
        assert "~c" in text
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_the_command_palette_lists_every_binding() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        labels = [command.title for command in app.get_system_commands(app.screen)]
        for binding in MainScreen.BINDINGS:
            assert any(label.startswith(binding.description) for label in labels)  # type: ignore[union-attr]
        await pilot.press("ctrl+p", *"raw")
        await pilot.pause(0.3)
        assert "Raw (r)" in screen_text(app)


async def test_h_ranks_headers_and_enter_filters_on_a_value() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("h")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HeaderInventoryScreen)
        names = [stats.name.lower() for stats in screen.names.rows]
        assert names.index("x-user-id") < names.index("accept")
        screen.names.move_cursor_to(names.index("x-user-id"))
        await pilot.pause()
        values = [value for value, _ in screen.values.rows]
        screen.values.move_cursor_to(values.index("alice"))
        await pilot.pause()
        text = screen_text(app)
        assert "3 matching requests" in text
        assert "^x-user-id: alice$" in text
        await pilot.press("m")
        assert '"steal"' in app.clipboard
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert shown_ids(app) == [USER_CONNS["alice"]]
        assert "x-user-id" in app.main_screen.filter_text


async def test_the_open_header_inventory_follows_new_traffic_and_esc_keeps_the_filter() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("h")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HeaderInventoryScreen)
        assert "x-tenant-new" not in [stats.name.lower() for stats in screen.names.rows]
        # One new connection per redraw: the inventory re-ranks every REFRESH_EVERY seconds.
        for conn in range(90, 90 + int(screen.REFRESH_EVERY / 0.1)):
            late = Script(start=T0 + 60.0)
            late.open(conn, "198.18.0.9", 45000 + conn)
            late.exchange(
                conn, request("GET", "/late", [("X-Tenant-New", "umbrella")]), response(200)
            )
            app.apply(late.updates())
            app.draw()
        await pilot.pause()
        assert "x-tenant-new" in [stats.name.lower() for stats in screen.names.rows]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert app.main_screen.filter_text == ""


async def test_headers_screen_masks_secret_values() -> None:
    app = shop_app()
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.press("h")
        await pilot.pause()
        assert "token-of-" not in screen_text(app)


async def test_a_session_error_is_a_notification_not_a_crash() -> None:
    from agent.errors import UserError

    class Failing(FakeSession):
        async def updates(self):  # type: ignore[no-untyped-def]
            yield []
            raise UserError("The agent stopped: no capture permission.")

    app = shop_app(Failing([], finite=True))
    async with app.run_test(size=SIZE) as pilot:
        await fed(app)
        await pilot.pause()
        assert any("capture permission" in n.message for n in app._notifications)
