"""The header inventory (ranking, value counts, mirrord snippets), secret masking, copy as curl."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from tests.unit.http_streams import Stream, c2s, replay
from tui.model.curl import as_curl
from tui.model.filters import header_value_expression, parse_filter
from tui.model.flows import Connection, Exchange, Request
from tui.model.headers import HeaderInventory, mirrord_config, mirrord_filter
from tui.model.secrets import MASK, mask


def request(*headers: tuple[str, str]) -> Request:
    return Request(method="GET", target="/", path="/", headers=list(headers))


def fill(inventory: HeaderInventory, count: int = 200) -> None:
    users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    for n in range(count):
        headers = [
            ("Host", "shop.example"),
            ("X-Request-Id", f"req-{n}"),
            ("X-User-Id", users[n % len(users)]),
            ("User-Agent", "curl/8.5" if n % 2 else "python-requests/2.31"),
            ("Date", f"Tue, 01 Oct 2024 10:{n // 60:02d}:{n % 60:02d} GMT"),
        ]
        if n % 4 == 0:
            headers.append(("X-Tenant", f"tenant-{n % 3}"))
        inventory.record(request(*headers))


def test_the_best_filter_key_is_common_and_varied_not_constant_or_unique() -> None:
    inventory = HeaderInventory()
    fill(inventory)
    ranked = [stats.name for stats in inventory.names_by_usefulness()]
    assert ranked[0] == "x-user-id"
    # Constant (host) and per-request (x-request-id, date) headers rank last.
    assert set(ranked[-3:]) == {"host", "x-request-id", "date"}
    assert ranked.index("user-agent") < ranked.index("x-request-id")
    assert ranked.index("x-tenant") < ranked.index("date")


def test_stats_share_distinct_values_and_top_values() -> None:
    inventory = HeaderInventory()
    fill(inventory)
    user = inventory.stats("X-USER-ID")
    assert user is not None
    assert user.requests_with == 200
    assert user.share == 1.0
    assert user.distinct_values == 8
    assert user.top_values[0] == ("alice", 25)
    assert user.display_name == "X-User-Id"
    tenant = inventory.stats("x-tenant")
    assert tenant is not None
    assert tenant.share == pytest.approx(0.25)
    assert inventory.values("x-tenant") == [("tenant-0", 17), ("tenant-1", 17), ("tenant-2", 16)]
    assert inventory.count_matching("x-user-id", "bob") == 25
    assert inventory.count_matching("x-user-id", "mallory") == 0


def test_distinct_values_are_capped_and_said_to_be() -> None:
    inventory = HeaderInventory(max_values=50)
    fill(inventory)
    ids = inventory.stats("x-request-id")
    assert ids is not None
    assert ids.distinct_values == 50
    assert ids.distinct_capped
    assert ids.distinct_label == "50+"
    assert len(inventory.values("x-request-id")) == 50


def test_a_header_repeated_in_one_request_counts_once() -> None:
    inventory = HeaderInventory()
    inventory.record(request(("Accept", "a"), ("accept", "b")))
    stats = inventory.stats("accept")
    assert stats is not None
    assert stats.requests_with == 1


def test_mirrord_snippet_is_exact_and_escaped() -> None:
    assert mirrord_filter("X-User-Id", "alice") == "^x-user-id: alice$"
    assert mirrord_config("x-user-id", "alice") == (
        '{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": '
        '{"header_filter": "^x-user-id: alice$"}}}}}'
    )
    tricky = "a.b+c (1)"
    pattern = json.loads(mirrord_config("x-user-id", tricky))["feature"]["network"]["incoming"][
        "http_filter"
    ]["header_filter"]
    assert re.fullmatch(pattern, f"x-user-id: {tricky}")
    assert not re.fullmatch(pattern, "x-user-id: aXb+c (1)")


def test_inventory_value_to_filter_round_trip() -> None:
    inventory = HeaderInventory()
    fill(inventory)
    value, count = inventory.values("x-user-id")[0]
    selected = parse_filter(header_value_expression("x-user-id", value))
    conn = Connection(("local", 1), "local", 1, "a", 1, "b", 2, 0.0)
    matched = 0
    for n, user in enumerate(["alice", "bob"] * 100):
        ex = Exchange(("local", 1), n, request(("X-User-Id", user)))
        matched += selected.matches_exchange(ex, conn)
    assert (value, matched) == ("alice", 100)
    assert count == 25


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("Authorization", "Bearer eyJhbGciOi.secret", f"Bearer {MASK}"),
        ("authorization", "opaque", MASK),
        ("Proxy-Authorization", "Basic dXNlcjpwYXNz", f"Basic {MASK}"),
        ("Cookie", "session=abc123; theme=dark", f"session={MASK}; theme={MASK}"),
        ("Set-Cookie", "session=abc; Path=/; HttpOnly", f"session={MASK}; Path=/; HttpOnly"),
        ("X-User-Id", "alice", "alice"),
    ],
)
def test_secrets_are_masked_but_keep_their_shape(name: str, value: str, shown: str) -> None:
    assert mask(name, value) == shown
    if name.lower() != "x-user-id":
        assert "secret" not in mask(name, value)
        assert "abc" not in mask(name, value)


def test_one_policy_masks_named_secrets_beyond_the_usual_four() -> None:
    # The names follow docs/secrets.md's pattern list; see tests/unit/test_secrets.py.
    assert mask("X-Api-Key", "k-123") == MASK
    assert mask("X-Request-Id", "r-123") == "r-123"


# ------------------------------------------------------------------------------ copy as curl


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str, list[tuple[str, str]], bytes]]] = []

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        _Recorder.seen.append((self.command, self.path, list(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_HEAD = _record

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen.clear()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", b""), ("POST", b'{"user": "o\'brien", "n": 1}'), ("PUT", b"\x00\x01\xffbin'\\")],
)
def test_copy_as_curl_replays_the_same_request(recorder: int, method: str, body: bytes) -> None:
    head = (
        f"{method} /api/items?q=a%20b&x=1 HTTP/1.1\r\nHost: 127.0.0.1:{recorder}\r\n"
        "X-User-Id: alice\r\nAuthorization: Bearer tok'en\r\nAccept: */*\r\n"
        "User-Agent: podtap-test\r\n"
    )
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    conn, _ = replay(Stream("curl", (c2s(head.encode() + b"\r\n" + body),), closed=False))
    command = as_curl(conn.exchanges[0], conn)
    subprocess.run(["bash", "-c", command + " -s -o /dev/null"], check=True, timeout=20)
    ((got_method, got_path, got_headers, got_body),) = _Recorder.seen
    assert (got_method, got_path, got_body) == (method, "/api/items?q=a%20b&x=1", body)
    assert ("X-User-Id", "alice") in got_headers
    assert ("Authorization", "Bearer tok'en") in got_headers
    assert ("User-Agent", "podtap-test") in got_headers


def test_copy_as_curl_can_mask_secrets_and_says_when_the_body_is_cut() -> None:
    raw = b"POST /x HTTP/1.1\r\nHost: h\r\nCookie: s=1\r\nContent-Length: 10\r\n\r\n0123456789"
    conn, _ = replay(Stream("curl", (c2s(raw),), closed=False), body_cap=4)
    command = as_curl(conn.exchanges[0], conn, masked=True)
    assert f"Cookie: s={MASK}" in command
    assert command.startswith("# the body is cut: 4 of 10 bytes were kept")
