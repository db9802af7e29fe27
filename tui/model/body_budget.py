"""The store-wide budget for decoded bodies: the oldest finished ones are let go past it.

Each message's body is capped (``Store.body_cap``), but the cap times the exchanges a store
keeps allows GiBs; this bounds the sum. A body let go keeps its true size (``body_length``), so
it reads as truncated to nothing. Sans-IO bookkeeping: told which exchanges changed, it answers
with the ones whose bodies it let go.
"""

from __future__ import annotations

from collections.abc import Iterable

from tui.model.flows import Exchange

DEFAULT_BODY_BUDGET = 256 << 20


class BodyBudget:
    def __init__(self, limit: int = DEFAULT_BODY_BUDGET) -> None:
        self.limit = limit
        self.total = 0
        """Body bytes held now, over every exchange counted."""
        self._sizes: dict[Exchange, int] = {}  # oldest first

    def account(self, changed: Iterable[Exchange]) -> list[Exchange]:
        """Count what the ``changed`` exchanges hold now; the exchanges let go, if over."""
        sizes = self._sizes
        for exchange in changed:
            response = exchange.response
            size = len(exchange.request.body) + (len(response.body) if response else 0)
            before = sizes.get(exchange, 0)
            if size != before:
                sizes[exchange] = size
                self.total += size - before
        excess = self.total - self.limit
        if excess <= 0:
            return []
        victims: list[Exchange] = []
        for exchange, size in sizes.items():
            if excess <= 0:
                break
            # A body still growing is passed over: let go, it would start again from a
            # later byte and read as the body's beginning.
            if exchange.finished is None and exchange.error is None:
                continue
            victims.append(exchange)
            excess -= size
        for exchange in victims:
            self.total -= sizes.pop(exchange)
            exchange.request.body = b""
            if exchange.response is not None:
                exchange.response.body = b""
        return victims

    def forget(self, exchanges: Iterable[Exchange]) -> None:
        """The exchanges left the store: their bodies no longer count."""
        sizes = self._sizes
        for exchange in exchanges:
            self.total -= sizes.pop(exchange, 0)

    def clear(self) -> None:
        self._sizes.clear()
        self.total = 0
