"""A big text body masked a chunk at a time: the same rows as masking it whole, only rows of
masked chunks ever exist, and chunks are not cut inside a JSON member."""

from __future__ import annotations

import json
import re

import pytest

from tui.model.masked_text import CHUNK, MaskedText, chunk_end, lazily_masked
from tui.model.secrets import mask_text
from tui.model.text_lines import WrappedText, plain

pytestmark = pytest.mark.timeout(60)

SECRET = "s3cr3t-v4lu3-0042"


def rows(sequence: MaskedText | WrappedText) -> list[str]:
    return [plain(sequence[i]) for i in range(len(sequence))]


def log_text(lines: int) -> str:
    kinds = [
        '{"order": %d, "access_token": "%s", "note": "ok"}',
        "GET /api/items?page=%d&api_key=%s HTTP/1.1",
        "line %d Authorization: Bearer %s",
        "  %d plain words, nothing to hide here %s",
    ]
    return "\n".join(kinds[n % 4] % (n, SECRET if n % 4 < 3 else "") for n in range(lines))


def test_chunks_give_the_rows_of_the_whole_text_masked() -> None:
    text = log_text(20_000)
    lazy = MaskedText(text, 70)
    assert not lazy.done
    first = len(lazy)
    assert 0 < first < 1000
    assert all(SECRET not in row for row in rows(lazy))
    steps = 0
    while not lazy.advance(CHUNK // 4):
        steps += 1
        assert all(SECRET not in plain(lazy[i]) for i in range(first, len(lazy)))
    assert steps > 3
    assert rows(lazy) == rows(WrappedText(mask_text(text), 70))
    assert lazy.progress == 1.0


def test_find_runs_through_the_masked_chunks() -> None:
    text = log_text(8_000)
    lazy = MaskedText(text, 60)
    while not lazy.advance(4096):
        pass
    whole = WrappedText(mask_text(text), 60)
    assert lazy.find_text("order 79", folded=True) == whole.find_text("order 79", folded=True)
    pattern = re.compile(re.escape("NOTE"), re.IGNORECASE)
    assert lazy.find(pattern) == whole.find(pattern)
    assert lazy.find_text(SECRET, folded=False) == []


def test_a_chunk_is_not_cut_inside_a_json_member() -> None:
    # A name on one line and its value on the next; a string that goes on past a line end.
    text = 'aaaa\n"token"\n  : "abc"\n"password": "x\ny\nz"\nbbbb\n'
    assert chunk_end(text, 0, 1) == len("aaaa\n")
    assert chunk_end(text, 5, 1) == text.index('"password"')
    assert chunk_end(text, text.index('"password"'), 1) == text.index("bbbb")
    assert mask_text(text) == "".join(mask_text(part) for part in _chunks(text, 1)), (
        "masked chunk by chunk as a whole"
    )
    assert "abc" not in mask_text(text)


def _chunks(text: str, size: int) -> list[str]:
    out, start = [], 0
    while start < len(text):
        end = chunk_end(text, start, size)
        out.append(text[start:end])
        start = end
    return out


def test_only_big_text_bodies_are_masked_lazily() -> None:
    lines = "\n".join(json.dumps({"n": n, "token": SECRET}) for n in range(20_000)).encode()
    assert lazily_masked(lines, "application/x-ndjson", "auto") is not None
    assert lazily_masked(lines, "application/json", "auto") is not None  # not one document
    assert lazily_masked(lines, "text/plain", "hex") is None
    assert lazily_masked(lines[:4000], "text/plain", "auto") is None  # small: masked whole
    document = json.dumps([{"n": n, "token": SECRET} for n in range(20_000)]).encode()
    assert lazily_masked(document, "application/json", "auto") is None
    assert lazily_masked(b"\xff\xfe" * 400_000, "", "auto") is None
