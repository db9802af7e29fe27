"""Counts in words, as podtap says them to people: "1 connection", "2 connections"."""

from __future__ import annotations


def counted(number: int, noun: str) -> str:
    """``number`` (with thousands separators) and ``noun``, plural unless there is one: for
    nouns whose plural adds an s, which are all that podtap counts."""
    return f"{number:,} {noun}" + ("" if number == 1 else "s")
