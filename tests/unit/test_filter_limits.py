"""Filters can't hurt: bounded nesting, linear regexes on bounded text, nothing raised but
FilterError whatever is typed."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_filters import connection, exchange
from tui.model.filters import MAX_DEPTH, FilterError, parse_filter

pytestmark = pytest.mark.timeout(60)

CATASTROPHIC = r"^/(\w+/?)+$"
"""Backtracks exponentially in Python's re on a long path that does not match."""


@pytest.mark.parametrize("opener", ["(", "!", "!("])
def test_nesting_past_the_limit_is_an_error_at_its_position(opener: str) -> None:
    depth = 400
    text = opener * depth + "~m GET" + ")" * (depth if "(" in opener else 0)
    with pytest.raises(FilterError, match=f"nested deeper than {MAX_DEPTH} levels") as error:
        parse_filter(text)
    # The first opener past the limit: MAX_DEPTH levels are allowed.
    levels_per_opener = len(opener)
    assert error.value.position == (MAX_DEPTH // levels_per_opener) * len(opener)


def test_nesting_up_to_the_limit_still_parses() -> None:
    text = "(" * MAX_DEPTH + "~m GET" + ")" * MAX_DEPTH
    assert parse_filter(text).evaluate(connection(), exchange())


def test_a_catastrophic_regex_costs_microseconds_per_exchange() -> None:
    hostile = exchange(target="/" + "a" * 5000 + "!")
    ordinary = exchange(target="/api/items/7")
    parsed = parse_filter(f"~p '{CATASTROPHIC}'")
    began = time.perf_counter()
    for _ in range(100):
        assert not parsed.evaluate(connection(), hostile)
    per_exchange = (time.perf_counter() - began) / 100
    assert per_exchange < 0.005, f"{per_exchange * 1000:.1f} ms per exchange"
    assert parsed.evaluate(connection(), ordinary)


def test_python_re_would_have_stalled_on_the_same_path() -> None:
    # The reason for RE2: 24 characters already take re long enough to notice (0.1 s+).
    began = time.perf_counter()
    assert re.search(CATASTROPHIC, "/" + "a" * 24 + "!") is None
    assert time.perf_counter() - began > 0.05


def test_a_body_search_looks_at_a_bounded_prefix() -> None:
    big = b"x" * 10_000_000 + b"needle"
    assert not parse_filter("~b needle").evaluate(connection(), exchange(body=big))
    assert parse_filter("~b needle").evaluate(connection(), exchange(body=b"a needle"))


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        (r"~p '(a)\1'", "backreferences are not supported"),
        ("~p '(?=a)'", "lookarounds are not supported"),
        ("~p 'a{5000}'", "invalid regex"),
        ("~p '[/'", "invalid regex"),
    ],
)
def test_what_re2_cannot_run_is_one_sentence(expression: str, reason: str) -> None:
    with pytest.raises(FilterError, match=re.escape(reason)):
        parse_filter(expression)


def test_a_port_in_other_digits_is_an_error_not_a_crash() -> None:
    with pytest.raises(FilterError, match="is not a port number"):
        parse_filter("~src :²")


FILTER_ALPHABET = st.sampled_from(
    [
        *"()!&|~\"' \\:[]{}^$*+?./-_aZ09²\x1b\u202e",
        "~m",
        "~p",
        "~h",
        "~hs",
        "~c",
        "~b",
        "~d",
        "~src",
        "~dst",
        "~pod",
        "~err",
        "~http",
        "~tcp",
        "~tls",
        "5xx",
        "::1",
        "10.0.0.0/8",
        "[fd00::1]:80",
        "(?P<x>",
        r"\1",
        "(?=",
        "a{99999}",
    ]
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.lists(FILTER_ALPHABET, max_size=40).map("".join)))
def test_any_text_parses_or_is_a_filter_error(text: str) -> None:
    try:
        parsed = parse_filter(text)
    except FilterError as error:
        position = error.position
        assert 0 <= position <= len(text)
        return
    for ex in (exchange(), exchange(status=None), None):
        parsed.evaluate(connection(), ex)
        parsed.evaluate(connection(protocol="tcp", client="fd00::1"), ex)
