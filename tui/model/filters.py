"""Filter expressions (mitmproxy style) over connections and exchanges."""

from __future__ import annotations

from tui.model.flows import Connection, Exchange


class FilterError(ValueError):
    """An expression that cannot be parsed; ``position`` is the offending character's index."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


class Filter:
    """A parsed expression. Exchange-level terms are false when ``exchange`` is None."""

    def evaluate(self, connection: Connection, exchange: Exchange | None) -> bool:
        raise NotImplementedError

    def matches_exchange(self, exchange: Exchange, connection: Connection) -> bool:
        return self.evaluate(connection, exchange)

    def matches_connection(self, connection: Connection) -> bool:
        if connection.exchanges:
            return any(self.evaluate(connection, ex) for ex in connection.exchanges)
        return self.evaluate(connection, None)


class _PathContains(Filter):
    def __init__(self, word: str) -> None:
        self.word = word

    def evaluate(self, connection: Connection, exchange: Exchange | None) -> bool:
        return exchange is not None and self.word in exchange.request.path


def parse_filter(text: str) -> Filter:
    word = text.strip()
    if not word:
        raise FilterError("empty filter", 0)
    return _PathContains(word)


FILTER_HELP: list[tuple[str, str]] = [("WORD", "the request path contains WORD")]


class Not(Filter):
    def __init__(self, inner: Filter) -> None:
        self.inner = inner

    def evaluate(self, connection: Connection, exchange: Exchange | None) -> bool:
        return not self.inner.evaluate(connection, exchange)
