"""The demo service's behaviour (sans-IO): a small shop API, request in, response out.

Endpoints, all JSON unless said otherwise:

- ``GET /healthz`` (text), ``GET /readyz``, ``GET /metrics`` (Prometheus text): no token needed.
- ``GET /api/users``, ``GET /api/users/{name}`` (404 for strangers).
- ``GET /api/orders``, ``POST /api/orders`` (201; 400 for a body that is not an order; a
  random 2% fail with 500, as a flaky database would).
- ``GET /api/cart``, ``POST /api/cart/items`` (201), ``DELETE /api/cart/items/{sku}`` (204).
- ``GET /api/search?q=`` (slow: the response says how long to wait before sending it).

Every ``/api/`` call needs ``authorization: Bearer ...`` (401 otherwise); anything else is 404.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

USERS = {
    "alice": {"id": 1, "name": "Alice Martin", "tenant": "acme", "plan": "pro"},
    "bob": {"id": 2, "name": "Bob Chen", "tenant": "acme", "plan": "free"},
    "carol": {"id": 3, "name": "Carol Diaz", "tenant": "globex", "plan": "enterprise"},
    "dave": {"id": 4, "name": "Dave Okafor", "tenant": "initech", "plan": "pro"},
}
PRODUCTS = {
    "sku-1001": ("Espresso beans 1kg", 24.5),
    "sku-1002": ("Pour-over kettle", 39.0),
    "sku-1003": ("Ceramic mug", 12.0),
    "sku-1004": ("Burr grinder", 129.0),
}
SERVER_NAME = "demo-shop/1.4.2"


@dataclass(frozen=True)
class ShopRequest:
    method: str
    target: str
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes = b""


@dataclass(frozen=True)
class ShopResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    delay: float = 0.0
    """Seconds the server waits before answering (simulated work)."""


def _json(status: int, payload: object, delay: float = 0.0) -> ShopResponse:
    return ShopResponse(status, json.dumps(payload, separators=(",", ":")).encode(), delay=delay)


def _error(status: int, message: str) -> ShopResponse:
    return _json(status, {"error": message, "status": status})


@dataclass
class Shop:
    """State of the demo shop: orders and carts live in memory for the life of the service."""

    rng: random.Random = field(default_factory=random.Random)
    failure_rate: float = 0.02
    orders: list[dict[str, object]] = field(default_factory=list)
    carts: dict[str, list[str]] = field(default_factory=dict)
    served: Counter[tuple[str, int]] = field(default_factory=Counter)

    def handle(self, request: ShopRequest) -> ShopResponse:
        response = self._route(request)
        self.served[(request.method, response.status)] += 1
        return response

    def _route(self, request: ShopRequest) -> ShopResponse:
        url = urlsplit(request.target)
        parts = [part for part in url.path.split("/") if part]
        method = request.method
        if url.path == "/healthz":
            return ShopResponse(200, b"ok", "text/plain; charset=utf-8")
        if url.path == "/readyz":
            return _json(200, {"status": "ready", "checks": {"db": "ok", "cache": "ok"}})
        if url.path == "/metrics":
            return ShopResponse(200, self._metrics(), "text/plain; version=0.0.4")
        if not parts or parts[0] != "api":
            return _error(404, f"no route for {url.path}")
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return _error(401, "missing bearer token")
        user = request.headers.get("x-user-id", "anonymous")
        match (method, parts[1:]):
            case ("GET", ["users"]):
                return _json(200, [{"login": login, **data} for login, data in USERS.items()])
            case ("GET", ["users", login]):
                if login not in USERS:
                    return _error(404, f"user {login} not found")
                return _json(200, {"login": login, **USERS[login]})
            case ("GET", ["orders"]):
                status = parse_qs(url.query).get("status", [None])[0]
                mine = [o for o in self.orders if o["user"] == user or user == "admin"]
                if status:
                    mine = [o for o in mine if o["status"] == status]
                if self.rng.random() < self.failure_rate:
                    return _error(500, "orders database timed out")
                return _json(200, {"orders": mine[-5:], "total": len(mine)})
            case ("POST", ["orders"]):
                return self._new_order(user, request.body)
            case ("GET", ["cart"]):
                return _json(200, self._cart(user))
            case ("POST", ["cart", "items"]):
                try:
                    sku = json.loads(request.body)["sku"]
                except (ValueError, KeyError, TypeError):
                    return _error(400, 'expected {"sku": ...}')
                if sku not in PRODUCTS:
                    return _error(404, f"unknown product {sku}")
                self.carts.setdefault(user, []).append(sku)
                return _json(201, self._cart(user))
            case ("DELETE", ["cart", "items", sku]):
                cart = self.carts.get(user, [])
                if sku not in cart:
                    return _error(404, f"{sku} is not in the cart")
                cart.remove(sku)
                return ShopResponse(204, b"", "")
            case ("GET", ["search"]):
                query = parse_qs(url.query).get("q", [""])[0].lower()
                hits = [
                    {"sku": sku, "title": title, "price": price}
                    for sku, (title, price) in PRODUCTS.items()
                    if query in title.lower()
                ]
                return _json(
                    200, {"query": query, "hits": hits}, delay=self.rng.uniform(0.02, 0.15)
                )
            case (_, ["users" | "orders" | "cart" | "search", *_]):
                return _error(405, f"{method} not allowed here")
        return _error(404, f"no route for {url.path}")

    def _new_order(self, user: str, body: bytes) -> ShopResponse:
        try:
            order = json.loads(body)
            items = [str(item["sku"]) for item in order["items"]]
        except (ValueError, KeyError, TypeError):
            return _error(400, 'expected {"items": [{"sku": ...}]}')
        if self.rng.random() < self.failure_rate:
            return _error(500, "orders database timed out")
        total = sum(PRODUCTS.get(sku, ("", 0.0))[1] for sku in items)
        created = {
            "id": 10_000 + len(self.orders),
            "user": user,
            "items": items,
            "total": round(total, 2),
            "status": self.rng.choice(["pending", "paid", "shipped"]),
        }
        self.orders.append(created)
        del self.orders[:-200]  # the demo runs for hours: keep memory flat
        return _json(201, created)

    def _cart(self, user: str) -> dict[str, object]:
        items = self.carts.get(user, [])
        return {
            "user": user,
            "items": [{"sku": sku, "title": PRODUCTS[sku][0]} for sku in items],
            "total": round(sum(PRODUCTS[sku][1] for sku in items), 2),
        }

    def _metrics(self) -> bytes:
        lines = [
            "# HELP http_requests_total Requests served, by method and status.",
            "# TYPE http_requests_total counter",
        ]
        for (method, status), count in sorted(self.served.items()):
            lines.append(f'http_requests_total{{method="{method}",code="{status}"}} {count}')
        lines.append(f"shop_orders_total {len(self.orders)}")
        return ("\n".join(lines) + "\n").encode()


def answer_line(command: str, store: dict[str, str]) -> tuple[str, bool]:
    """The cache port's line protocol (Redis-like inline commands): the reply, and whether
    the connection ends after it."""
    words = command.split()
    if not words:
        return "-ERR empty command", False
    verb = words[0].upper()
    if verb == "PING":
        return "+PONG", False
    if verb == "GET" and len(words) == 2:
        value = store.get(words[1])
        return (f"${value}" if value is not None else "$-1"), False
    if verb == "SET" and len(words) >= 3:
        store[words[1]] = " ".join(words[2:])
        return "+OK", False
    if verb == "QUIT":
        return "+BYE", True
    return f"-ERR unknown command {verb}", False
