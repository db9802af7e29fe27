"""Filter expressions over connections and exchanges, in the style of mitmproxy's.

    ~m POST & ~c 5xx            POSTs that failed on the server
    ~h "x-user-id: ^alice$"     requests from alice
    !(~p ^/healthz | ~tcp)      everything but health checks and raw TCP
    api/orders                  a bare word matches the path

Terms are joined by ``&`` (or just a space), ``|`` and ``!``, grouped with parentheses; ``!``
binds tightest, then ``&``, then ``|``. Arguments are bare words or quoted strings (``"..."``
or ``'...'``; inside them only ``\\"``, ``\\'`` and ``\\\\`` are escapes, so regex escapes such
as ``\\d`` are written as is). Regexes on paths, bodies and sources are *smart-case*:
case-insensitive unless they contain an upper-case letter. Methods, hosts and header names
always match case-insensitively; header values are case-sensitive (they are often ids).

Regexes are RE2's (:mod:`tui.model.linear_regex`): linear in the text, which is bounded, so no
pattern can stall the app; nesting deeper than :data:`MAX_DEPTH` is refused with its position.

Exchange terms (``~m ~p ~h ~hs ~c ~gs ~b ~d ~err``) are false for a connection that has no
exchanges yet; connection terms (``~src ~dst ~pod ~http ~h2 ~grpc ~ws ~tcp ~tls``) hold for
all its exchanges.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui.model.filter_operators import (
    FILTER_HELP,
    OPERATORS_BY_TOKEN,
    FilterError,
    Predicate,
    request_path,
)
from tui.model.flows import Connection, Exchange

__all__ = [
    "FILTER_HELP",
    "MAX_DEPTH",
    "And",
    "Filter",
    "FilterError",
    "Not",
    "Or",
    "Term",
    "header_value_expression",
    "parse_filter",
    "quote",
    "regex_escape",
]


class Filter:
    """A parsed expression. Exchange-level terms are false when ``exchange`` is None."""

    text: str = ""
    """The expression as the user typed it (set on the root by parse_filter)."""

    def evaluate(self, connection: Connection, exchange: Exchange | None) -> bool:
        raise NotImplementedError

    def matches_exchange(self, exchange: Exchange, connection: Connection) -> bool:
        return self.evaluate(connection, exchange)

    def matches_connection(self, connection: Connection) -> bool:
        """True if one of its exchanges matches (or, with none yet, the connection itself)."""
        if connection.exchanges:
            return any(self.evaluate(connection, ex) for ex in connection.exchanges)
        return self.evaluate(connection, None)


class Not(Filter):
    def __init__(self, inner: Filter) -> None:
        self.inner = inner

    def evaluate(self, connection: Connection, exchange: Exchange | None) -> bool:
        return not self.inner.evaluate(connection, exchange)

    def __repr__(self) -> str:
        return f"Not({self.inner!r})"


class And(Filter):
    def __init__(self, parts: list[Filter]) -> None:
        self.parts = parts

    def evaluate(self, connection: Connection, exchange: Exchange | None) -> bool:
        return all(part.evaluate(connection, exchange) for part in self.parts)

    def __repr__(self) -> str:
        return f"And({self.parts!r})"


class Or(Filter):
    def __init__(self, parts: list[Filter]) -> None:
        self.parts = parts

    def evaluate(self, connection: Connection, exchange: Exchange | None) -> bool:
        return any(part.evaluate(connection, exchange) for part in self.parts)

    def __repr__(self) -> str:
        return f"Or({self.parts!r})"


class Term(Filter):
    def __init__(self, label: str, predicate: Predicate) -> None:
        self.label = label
        self.predicate = predicate

    def evaluate(self, connection: Connection, exchange: Exchange | None) -> bool:
        return self.predicate(connection, exchange)

    def __repr__(self) -> str:
        return f"Term({self.label!r})"


# ------------------------------------------------------------------------------ parsing


@dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "!", "&", "|", "op", "word"
    text: str
    position: int


_SPECIAL = "()!&|"


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif char in _SPECIAL:
            tokens.append(_Token(char, char, index))
            index += 1
        elif char in "\"'":
            value, end = _quoted(text, index)
            tokens.append(_Token("word", value, index))
            index = end
        else:
            end = index
            while end < len(text) and not text[end].isspace() and text[end] not in _SPECIAL:
                end += 1
            word = text[index:end]
            kind = "op" if word.startswith("~") else "word"
            tokens.append(_Token(kind, word, index))
            index = end
    return tokens


def _quoted(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] in (quote, "\\"):
            out.append(text[index + 1])
            index += 2
        elif char == quote:
            return "".join(out), index + 1
        else:
            out.append(char)
            index += 1
    raise FilterError("unclosed quote", start)


MAX_DEPTH = 64
"""Parentheses and ``!`` nested deeper than this are refused (the parser recurses)."""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> Filter:
        if not self.tokens:
            raise FilterError("empty filter", 0)
        result = self.either()
        extra = self.peek()
        if extra is not None:
            raise FilterError(f"unexpected {extra.text!r}", extra.position)
        return result

    def either(self) -> Filter:
        parts = [self.both()]
        while (token := self.peek()) is not None and token.kind == "|":
            self.take()
            parts.append(self.both())
        return parts[0] if len(parts) == 1 else Or(parts)

    def both(self) -> Filter:
        parts = [self.unary()]
        while (token := self.peek()) is not None and token.kind not in ("|", ")"):
            if token.kind == "&":
                self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(parts)

    def unary(self) -> Filter:
        token = self.peek()
        if token is None:
            raise FilterError("an expression is missing at the end", len(self.text))
        if token.kind in ("!", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FilterError(f"nested deeper than {MAX_DEPTH} levels", token.position)
            try:
                return self.nested(token)
            finally:
                self.depth -= 1
        if token.kind == "op":
            return self.operator(self.take())
        if token.kind == "word":
            self.take()
            return Term(f"path {token.text}", request_path(token.text, token.position))
        raise FilterError(f"unexpected {token.text!r}", token.position)

    def nested(self, token: _Token) -> Filter:
        """``!EXPR`` or ``( EXPR )``, ``token`` being the ``!`` or the ``(``."""
        self.take()
        if token.kind == "!":
            return Not(self.unary())
        inner = self.either()
        closing = self.peek()
        if closing is None or closing.kind != ")":
            raise FilterError("missing )", token.position)
        self.take()
        return inner

    def operator(self, token: _Token) -> Filter:
        spec = OPERATORS_BY_TOKEN.get(token.text)
        if spec is None:
            raise FilterError(f"unknown operator {token.text}", token.position)
        if spec.build is not None:
            return Term(spec.token, spec.build())
        argument = self.peek()
        if argument is None:
            raise FilterError(f"{spec.token} needs {spec.argument}", len(self.text))
        if argument.kind != "word":
            # ~p (a|b) reads as ~p followed by a group: the argument wants quotes.
            raise FilterError(
                f"{spec.token} needs {spec.argument}; quote one that starts with "
                f'{argument.text!r}: {spec.token} "{argument.text}..."',
                argument.position,
            )
        self.take()
        assert spec.build_with is not None
        predicate = spec.build_with(argument.text, argument.position)
        return Term(f"{spec.token} {argument.text}", predicate)


def parse_filter(text: str) -> Filter:
    """Parse ``text``; raises FilterError (message and position) on invalid input."""
    result = _Parser(text).parse()
    result.text = text
    return result


# ------------------------------------------------------------------------------ writing


_REGEX_SPECIAL = frozenset(".^$*+?{}[]\\|()")


def regex_escape(value: str) -> str:
    """Escape what regexes give meaning to, and nothing else (keeps values readable)."""
    return "".join("\\" + char if char in _REGEX_SPECIAL else char for char in value)


def quote(text: str) -> str:
    """``text`` as a quoted string that the filter parser reads back unchanged."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def header_value_expression(name: str, value: str) -> str:
    """The filter selecting requests whose header ``name`` is exactly ``value``."""
    return f"~h {quote(f'{name}: ^{regex_escape(value)}$')}"
