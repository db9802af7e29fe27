"""Body views: each view on the bodies it is for, fallbacks, and huge bodies made lazily."""

from __future__ import annotations

import json
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui.model.bodies import BODY_MODES, FOLD_DEPTH, auto_mode, file_type, render_body
from tui.model.text_lines import HEX_ASCII_COLUMN, MAX_MATCHES, plain

pytestmark = pytest.mark.timeout(60)


def text_of(body: bytes, content_type: str = "", mode: str = "auto", width: int = 80) -> str:
    rendered = render_body(body, content_type, mode, width)  # type: ignore[arg-type]
    return "\n".join(plain(line) for line in rendered.lines)


def test_json_is_pretty_and_folded_past_a_depth() -> None:
    deep: object = {"leaf": 1}
    for _ in range(FOLD_DEPTH + 2):
        deep = {"down": deep}
    body = json.dumps({"order": 4711, "tags": ["a", "b"], "empty": {}, "deep": deep}).encode()
    shown = text_of(body, "application/json")
    assert '  "order": 4711,' in shown
    assert '    "a",' in shown
    assert '"empty": {}' in shown
    assert "{… 1 keys}" in shown
    assert render_body(body, "application/json", "auto", 80).kind == "JSON"


def test_markup_is_indented() -> None:
    body = b"<html><head><meta charset=utf-8></head><body><p>Hi <b>there</b></p></body></html>"
    lines = text_of(body, "text/html").splitlines()
    assert lines[:4] == ["<html>", "  <head>", "    <meta charset=utf-8>", "  </head>"]
    assert "      Hi" in lines
    assert lines[-1] == "</html>"


def test_form_is_a_table() -> None:
    shown = text_of(b"name=Ada+Lovelace&id=4711&empty=", "application/x-www-form-urlencoded")
    assert shown.splitlines() == ["name  = Ada Lovelace", "id    = 4711", "empty = "]


def test_multipart_lists_parts_with_headers() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="pic"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n" + b"\x00" * 30 + b"\r\n--XyZ--\r\n"
    )
    shown = text_of(body, 'multipart/form-data; boundary="XyZ"')
    assert "part 1  5 bytes" in shown
    assert '  Content-Disposition: form-data; name="note"' in shown
    assert "  hello" in shown
    assert "(PNG image, 38 bytes)" in shown


def test_images_and_archives_show_type_and_size() -> None:
    png = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
        + (640).to_bytes(4, "big")
        + (480).to_bytes(4, "big")
        + b"\x00" * 2000
    )
    assert text_of(png, "image/png").startswith("PNG image, 2.0 KB, 640x480")
    assert file_type(b"PK\x03\x04rest") == "ZIP archive"
    assert file_type(b"\x1f\x8b\x08") == "gzip data"
    assert text_of(b"\x1f\x8b\x08\x00" * 10, "application/octet-stream").startswith("gzip data")


def test_a_view_that_does_not_fit_says_why() -> None:
    rendered = render_body(b"not json at all", "application/json", "auto", 80)
    assert rendered.kind == "text"
    assert rendered.note.startswith("not JSON")
    binary = render_body(bytes(range(256)), "", "json", 80)
    assert binary.kind == "hex"
    assert "not text" in binary.note


def test_auto_sniffs_without_a_content_type() -> None:
    assert auto_mode(b'  {"a": 1}', "") == "json"
    assert auto_mode(b"<?xml version='1.0'?><a/>", "") == "markup"
    assert auto_mode(b"plain words", "") == "text"
    assert auto_mode(b"{}", "application/problem+json") == "json"


def test_hex_rows_and_find_in_the_printable_column() -> None:
    rendered = render_body(b"0123456789abcdefORDER-4711", "", "hex", 80)
    rows = [plain(line) for line in rendered.lines]
    assert rows[0].startswith("00000000  30 31 32")
    assert rows[1][HEX_ASCII_COLUMN:] == "ORDER-4711"
    found = rendered.lines.find(re.compile("4711"))  # type: ignore[attr-defined]
    assert found == [(1, HEX_ASCII_COLUMN + 6, HEX_ASCII_COLUMN + 10)]


def test_control_characters_never_reach_the_terminal() -> None:
    shown = text_of(b"hello \x1b[2Jworld, a text with two controls in it\x07\r\nnext", "text/plain")
    assert "\x1b" not in shown
    assert "\x07" not in shown
    assert shown.splitlines()[1] == "next"


def test_a_10_mb_body_opens_at_once_and_finds_fast() -> None:
    line = b'{"order": 4711, "item": "widget", "note": "' + b"x" * 60 + b'"}\n'
    body = line * (10_000_000 // len(line))
    began = time.perf_counter()
    rendered = render_body(body, "application/json", "auto", 120)
    rows = len(rendered.lines)
    middle = plain(rendered.lines[rows // 2])
    opened = time.perf_counter() - began
    assert rendered.kind == "text"
    assert "not formatted" in rendered.note
    assert middle.startswith('{"order": 4711')
    assert opened < 0.5  # measured in bench/bench_views.py; a loose bound for slow CI
    found = rendered.lines.find(re.compile("4711"))  # type: ignore[attr-defined]
    assert len(found) == min(rows, MAX_MATCHES)  # one a line, counted up to the cap
    assert found[-1][0] == MAX_MATCHES - 1
    hexed = render_body(body, "", "hex", 120)
    assert len(hexed.lines) == -(-len(body) // 16)


def test_a_literal_find_places_matches_as_the_pattern_does() -> None:
    from tui.model.find import make_needle
    from tui.model.text_lines import WrappedText

    text = "Order 4711\r\n" + "x" * 95 + "order 4711 and ORDER 4711\n" + "none\n" * 3 + "order"
    for width in (7, 40, 200):
        lines = WrappedText(text, width)
        for typed in ("order 4711", "ORDER", "4711", "ord", "nowhere"):
            needle = make_needle(typed)
            assert needle is not None
            literal = lines.find_text(needle.key, needle.folded)
            assert literal == lines.find(needle.pattern), (typed, width)
        folded = make_needle("order")
        assert folded is not None
        assert len(lines.find_text(folded.key, folded.folded) or []) == 4
    # Lower-casing "İ" makes two characters: positions would move, so the pattern is used.
    assert WrappedText("İ order", 80).find_text("order", True) is None


def test_long_lines_wrap_at_the_width() -> None:
    rendered = render_body(b"a" * 250 + b"\nb", "text/plain", "text", 100)
    assert [len(plain(line)) for line in rendered.lines] == [100, 100, 50, 1]
    found = rendered.lines.find(re.compile("aab"))  # type: ignore[attr-defined]
    assert found == []  # a line end is not a character of either line


@given(
    st.binary(max_size=2000),
    st.sampled_from(
        [
            "",
            "application/json",
            "text/html",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=b",
            "image/png",
        ]
    ),
)
def test_no_body_crashes_any_view(body: bytes, content_type: str) -> None:
    for mode in BODY_MODES:
        rendered = render_body(body, content_type, mode, 40)
        for line in rendered.lines:
            text = plain(line)
            assert len(text) <= 80 or mode in ("hex", "auto")
            assert not any(ord(ch) < 32 for ch in text)


def test_hex_rows_fit_a_narrow_pane() -> None:
    rendered = render_body(bytes(range(64)), "", "hex", 60)
    rows = [plain(line) for line in rendered.lines]
    assert all(len(row) <= 60 for row in rows)
    assert rows[1].startswith("0000000c  0c 0d")
