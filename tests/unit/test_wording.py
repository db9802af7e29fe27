"""Counts in words: one of a thing is singular, any other number plural."""

from __future__ import annotations

import io

import pytest

from tui.commands.record import ProgressLine
from tui.model.recording_progress import Progress
from tui.model.wording import counted


@pytest.mark.parametrize(
    ("number", "said"),
    [
        (0, "0 connections"),
        (1, "1 connection"),
        (2, "2 connections"),
        (12_345, "12,345 connections"),
    ],
)
def test_a_count_is_singular_for_one_only(number: int, said: str) -> None:
    assert counted(number, "connection") == said


def test_the_recording_progress_line_says_one_event_on_one_connection() -> None:
    progress = Progress(events=1, connections=1)
    line = ProgressLine(io.StringIO(), "x.jsonl", lambda: 0.0)
    assert line.text(progress).startswith("1 event, 1 connection, ")
