"""Label and field selectors as the API server reads them (sans-IO)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.kubesim.errors import ApiError

Requirement = Callable[[Mapping[str, str]], bool]

_SET_EXPR = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside the parentheses of an ``in (...)`` set."""
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term.strip() for term in terms if term.strip()]


def _parse_term(term: str) -> Requirement:
    match = _SET_EXPR.match(term)
    if match:
        key, operator, raw_values = match.groups()
        values = {value.strip() for value in raw_values.split(",") if value.strip()}
        if operator == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for operator in ("!=", "==", "="):
        if operator in term:
            key, value = (part.strip() for part in term.split(operator, 1))
            if not key:
                break
            if operator == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    if re.fullmatch(r"[A-Za-z0-9._/-]+", term):
        return lambda labels: term in labels
    raise ApiError.bad_request(f"unable to parse requirement: invalid label selector: {term!r}")


def label_selector(text: str | None) -> Callable[[Mapping[str, str]], bool]:
    """A predicate over an object's labels; an empty selector matches everything."""
    requirements = [_parse_term(term) for term in _split_terms(text or "")]
    return lambda labels: all(requirement(labels) for requirement in requirements)


def matches_label_selector_object(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A structured LabelSelector (matchLabels + matchExpressions), as workloads carry it."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = set(expression.get("values") or [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def selector_to_string(selector: Mapping[str, Any]) -> str:
    """The string form the Scale subresource reports in status.selector."""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        operator = expression["operator"]
        if operator in ("In", "NotIn"):
            values = ",".join(sorted(expression.get("values") or []))
            parts.append(f"{expression['key']} {operator.lower()} ({values})")
        elif operator == "Exists":
            parts.append(expression["key"])
        else:
            parts.append(f"!{expression['key']}")
    return ",".join(parts)


def _field(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part)
    return "" if value is None else str(value)


def _field_check(path: str, value: str, *, negate: bool) -> Callable[[Mapping[str, Any]], bool]:
    return lambda obj: (_field(obj, path) == value) != negate


def field_selector(text: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over an object for ``metadata.name=x,spec.nodeName!=y``-style selectors."""
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    for term in _split_terms(text or ""):
        for operator in ("!=", "==", "="):
            if operator in term:
                path, value = (part.strip() for part in term.split(operator, 1))
                checks.append(_field_check(path, value, negate=operator == "!="))
                break
        else:
            raise ApiError.bad_request(f"invalid field selector: {term!r}")
    return lambda obj: all(check(obj) for check in checks)
