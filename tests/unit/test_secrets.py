"""One secrets policy: every kind of secret masked in every output, unless revealed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.hostile_traffic import JWT, MARK, SECRET_KINDS, SecretKind, secret_script
from tui.model.curl import as_curl
from tui.model.flows import Connection, Exchange
from tui.model.secrets import MASK, is_secret, mask, mask_body, mask_text, mask_url
from tui.model.store import Store
from tui.output.exchange_text import ExchangeTextFormatter
from tui.output.har import har_entry
from tui.output.jsonl import RecordingHeader
from tui.output.recording import write_view

pytestmark = pytest.mark.timeout(30)


def decoded(kind: SecretKind) -> tuple[Connection, Exchange]:
    store = Store()
    store.apply(secret_script([kind]).updates())
    (connection,) = store.connections.values()
    (exchange,) = connection.exchanges
    assert exchange.response is not None
    return connection, exchange


KINDS = pytest.mark.parametrize("kind", SECRET_KINDS, ids=[k.name for k in SECRET_KINDS])


@KINDS
def test_har_masks_every_kind_unless_revealed(kind: SecretKind) -> None:
    connection, exchange = decoded(kind)
    masked = json.dumps(har_entry(exchange, connection), ensure_ascii=False)
    assert MARK not in masked
    assert MASK in masked
    assert MARK in json.dumps(har_entry(exchange, connection, reveal=True))


@KINDS
def test_dump_http_masks_every_kind_unless_revealed(kind: SecretKind) -> None:
    store = Store()
    change = store.apply(secret_script([kind]).updates())
    masked = ExchangeTextFormatter().format_change(change, store.get)
    assert MARK not in masked
    shown = ExchangeTextFormatter(reveal=True).format_change(change, store.get)
    assert (MARK in shown) == kind.in_headers


@KINDS
def test_copy_as_curl_masks_every_kind_unless_revealed(kind: SecretKind) -> None:
    connection, exchange = decoded(kind)
    assert MARK not in as_curl(exchange, connection, masked=True)
    assert (MARK in as_curl(exchange, connection)) == kind.in_request


def test_written_view_har_masks_and_reveals(tmp_path: Path) -> None:
    store = Store()
    store.apply(secret_script().updates())
    view = [(conn, store.visible_exchanges(conn.key)) for conn in store.connections.values()]
    header = RecordingHeader(podtap="test", target="netns/shop", ports=[8080])
    write_view(tmp_path / "masked.har", view, header)
    write_view(tmp_path / "shown.har", view, header, reveal=True)
    assert MARK not in (tmp_path / "masked.har").read_text()
    assert (tmp_path / "shown.har").read_text().count(MARK) >= len(SECRET_KINDS)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("X-Api-Key", True),
        ("x_auth_token", True),
        ("X-Amz-Security-Token", True),
        ("X-CSRF-Token", True),
        ("Authorization", True),
        ("Proxy-Authorization", True),
        ("client_secret", True),
        ("passwd", True),
        ("PHPSESSID", True),
        ("SAMLResponse", True),
        ("X-Amz-Credential", True),
        ("api-key", True),
        ("X-Session-Id", True),
        ("Content-Type", False),
        ("author", False),
        ("x-user-id", False),
        ("page", False),
        ("WWW-Authenticate", False),
        ("Access-Control-Allow-Credentials", False),
    ],
)
def test_names_follow_the_documented_patterns(name: str, secret: bool) -> None:
    assert is_secret(name) is secret


def test_a_masked_value_keeps_what_helps_debugging() -> None:
    assert mask("Authorization", "Bearer abc") == f"Bearer {MASK}"
    assert mask("Cookie", "a=1; b=2") == f"a={MASK}; b={MASK}"
    assert mask("Set-Cookie", "sid=1; Path=/; HttpOnly") == f"sid={MASK}; Path=/; HttpOnly"
    header, claims, _signature = JWT.split(".")
    assert mask("Authorization", f"Bearer {JWT}") == f"Bearer {header}.{claims}.{MASK}"
    assert mask("X-User-Id", "alice") == "alice"


def test_oauth_code_alone_is_only_secret_in_a_redirect() -> None:
    assert mask_url("/countries?code=FR") == "/countries?code=FR"
    assert mask_url("/cb?code=abc&state=xyz") == f"/cb?code={MASK}&state={MASK}"
    assert mask("Location", "https://a/cb?code=abc") == f"https://a/cb?code={MASK}"


def test_implicit_flow_tokens_in_a_fragment_are_masked() -> None:
    assert mask_url("https://a/#access_token=abc&x=1") == f"https://a/#access_token={MASK}&x=1"


def test_json_bodies_are_masked_at_any_depth_and_left_alone_otherwise() -> None:
    body = json.dumps({"a": [{"credentials": {"key": 1}}], "n": 1}).encode()
    assert json.loads(mask_body(body, "application/json")) == {"a": [{"credentials": MASK}], "n": 1}
    clean = b'{"n": 1}'
    assert mask_body(clean, "application/json") is clean
    binary = b"\xff\x00password=1"
    assert mask_body(binary, "application/octet-stream") is binary


def test_raw_text_masks_header_lines_urls_pairs_and_json_members() -> None:
    raw = (
        "POST /login?api_key=k1 HTTP/1.1\r\nHost: a\r\nAuthorization: Basic YWJj\r\n"
        'X-Api-Key: k2\r\n\r\n{"password": "p1", "user": "bob"}\npassword=p2&u=bob'
    )
    shown = mask_text(raw)
    for secret in ("k1", "YWJj", "k2", "p1", "p2"):
        assert secret not in shown
    assert "Authorization: Basic " in shown
    assert '"user": "bob"' in shown
    assert shown.endswith("&u=bob")


FRAGMENTS = [
    "order 4711",
    "Pass_Word=hunter2",
    "x-api-key: k3y",
    '"Session.Id": "abc"',
    "a=1&b=2",
    "https://u:pw@h/",
    "/cb?code=1&state=2",
    "Location: /cb?code=9",
    "eyJhbGciOi.eyJzdWIi.sig12345",
    "/x?pass%77ord=1",
    "pass+word=1",
    '"pass\\u0077ord": "x"',
    "Author: Ann",
    "authorization",
    "tok\x1fen=1",
    "c\u212aokie=1",
    "{",
    "}",
    ":",
    " ",
    "\n",
    "\r\n",
    "=",
    "&",
    '"',
    "?",
    "/",
]


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12))
def test_the_prefilter_never_lets_a_secret_through(parts: list[str]) -> None:
    from tui.model.secrets import could_hold_secrets, mask_body

    body = "".join(parts).encode()
    for content_type in ("application/json", "text/plain", ""):
        # Small bodies are masked without the prefilter: what it must agree with.
        assert could_hold_secrets(body) or mask_body(body, content_type) == body


def test_a_large_body_without_secrets_is_not_masked_and_one_with_them_is() -> None:
    from tui.model.secrets import PREFILTER_FROM, could_hold_secrets, mask_body

    plain = b'{"order": 1, "note": "' + b"x" * 60 + b'"}\n'
    body = plain * (PREFILTER_FROM // len(plain) + 1)
    assert not could_hold_secrets(body)
    assert mask_body(body, "text/plain") is body
    leaky = body + b'{"api_key": "k3y-value"}\n'
    assert could_hold_secrets(leaky)
    assert b"k3y-value" not in mask_body(leaky, "text/plain")
