"""Route templates: which path segments name one record and collapse, which stay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui.model.filters import parse_filter
from tui.model.flows import Connection, Exchange, Request
from tui.model.routes import MAX_TEMPLATE, RouteCache, route_template

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/users/4711", "/api/users/{id}"),
        ("/api/users/4711/orders/12?expand=1", "/api/users/{id}/orders/{id}"),
        ("/orders/0b5f7c1e-8a8e-4c7e-9d8c-3f1d2a6b7c8d", "/orders/{uuid}"),
        ("/orders/0B5F7C1E8A8E4C7E9D8C3F1D2A6B7C8D/items", "/orders/{uuid}/items"),
        ("/blobs/9f86d081884c7d65", "/blobs/{hex}"),
        ("/commits/a1b2c3d4", "/commits/{hex}"),
        ("/s/eyJhbGciOiJIUzI1NiJ9abc123xyz", "/s/{token}"),
        ("/pkg.Greeter/SayHello", "/pkg.Greeter/SayHello"),
        ("/api/cart/items/sku-1004", "/api/cart/items/sku-{id}"),
        ("/orders/ord_77/lines", "/orders/ord_{id}/lines"),
        ("/api/v1/healthz", "/api/v1/healthz"),
        ("/deadbeef", "/deadbeef"),  # hex letters only: a word, not an id
        ("/internationalization-guidelines", "/internationalization-guidelines"),
        ("/", "/"),
        ("", "/"),
        ("*", "*"),
        ("shop.example:443", "shop.example:443"),
        ("/a//b/", "/a//b/"),
    ],
)
def test_templates(path: str, template: str) -> None:
    assert route_template(path) == template


def test_deep_and_long_paths_are_capped() -> None:
    deep = "/x" * 50
    assert route_template(deep).endswith("/…")
    long = "/" + "word-" * 100
    assert len(route_template(long)) == MAX_TEMPLATE


@given(st.text(max_size=300))
def test_any_path_gives_a_bounded_template(path: str) -> None:
    template = route_template(path)
    assert len(template) <= MAX_TEMPLATE
    assert route_template(path) == template


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=5))
def test_ids_always_collapse(ids: list[int]) -> None:
    path = "".join(f"/things/{number}" for number in ids)
    assert route_template(path) == "/things/{id}" * len(ids)


def test_the_cache_answers_like_the_function() -> None:
    cache = RouteCache(capacity=3)
    paths = [f"/users/{n}" for n in range(10)] + ["/a", "/b", "/users/1"]
    assert [cache.template(p) for p in paths] == [route_template(p) for p in paths]


def test_route_filter_selects_the_endpoint() -> None:
    connection = Connection(("local", 0), "local", 0, "10.0.0.1", 4000, "10.0.0.2", 80, 0.0)

    def exchange(target: str) -> Exchange:
        path = target.split("?")[0]
        return Exchange(("local", 0), 0, Request(method="GET", target=target, path=path))

    term = parse_filter("~m GET & ~route /api/users/{id}")
    assert term.evaluate(connection, exchange("/api/users/7?x=1"))
    assert not term.evaluate(connection, exchange("/api/users/me"))
    assert not term.evaluate(connection, exchange("/api/users/7/orders"))
