"""Route templates: the path a request asked for, with the parts that name one record
collapsed, so that ``/api/users/7`` and ``/api/users/8`` count as one endpoint.

    /api/users/4711                               -> /api/users/{id}
    /orders/0b5f7c1e-8a8e-4c7e-9d8c-3f1d2a6b7c8d  -> /orders/{uuid}
    /blobs/9f86d081884c7d65                       -> /blobs/{hex}
    /s/eyJhbGciOiJIUzI1NiJ9abc123xyz              -> /s/{token}
    /cart/items/sku-1004                          -> /cart/items/sku-{id}
    /pkg.Greeter/SayHello                         -> /pkg.Greeter/SayHello (gRPC: kept)

A segment is collapsed when it is a number, a UUID, a hex string of 8 characters or more with
at least one digit (a hash or an object id), or a long run of letters, digits and ``-_.~=``
that mixes letters and digits (a session or API token); a word, ``-`` or ``_``, then a number
keeps its word (``sku-{id}``). Words such as ``v1`` or ``healthz`` stay. The query string is
left out. Templates are capped in length: a hostile client must not make one endpoint per
request.
"""

from __future__ import annotations

import re

MAX_TEMPLATE = 120
"""Characters of a template kept; longer ones end in ``…`` (and so share a row)."""

MAX_SEGMENTS = 12
"""Path segments kept; deeper paths end in ``/…``."""

_NUMBER = re.compile(r"[0-9]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]{8,}")
_TOKEN = re.compile(r"[A-Za-z0-9\-_.~=]{20,}")
_PREFIXED_NUMBER = re.compile(r"([A-Za-z]+[-_])[0-9]+")
_DIGIT = re.compile(r"[0-9]")
_LETTER = re.compile(r"[A-Za-z]")


def segment_template(segment: str) -> str:
    """One path segment as it reads in a template: itself, or a ``{placeholder}``."""
    if not _DIGIT.search(segment):
        return segment  # every placeholder has a digit (a UUID without one is left alone)
    if _NUMBER.fullmatch(segment):
        return "{id}"
    if _UUID.fullmatch(segment):
        return "{uuid}"
    prefixed = _PREFIXED_NUMBER.fullmatch(segment)
    if prefixed:
        return prefixed.group(1) + "{id}"
    if _HEX.fullmatch(segment):
        return "{hex}"
    if _LETTER.search(segment) and _TOKEN.fullmatch(segment):
        return "{token}"
    return segment


def route_template(path: str) -> str:
    """The route template of a request path (or target: its query string is dropped)."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    if not _DIGIT.search(path) and path.count("/") <= MAX_SEGMENTS:
        return _capped(path or "/")  # nothing to collapse: the common case, made cheap
    if not path.startswith("/"):
        # Asterisk (OPTIONS *) or authority form (CONNECT host:443): nothing to collapse.
        return _capped(path or "/")
    segments = path[1:].split("/", MAX_SEGMENTS)
    deeper = len(segments) > MAX_SEGMENTS
    parts = [segment_template(segment) for segment in segments[:MAX_SEGMENTS]]
    template = "/" + "/".join(parts) + ("/…" if deeper else "")
    return _capped(template)


def _capped(template: str) -> str:
    if len(template) <= MAX_TEMPLATE:
        return template
    return template[: MAX_TEMPLATE - 1] + "…"


class RouteCache:
    """Templates of paths seen recently: live traffic repeats a few paths many times."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._known: dict[str, str] = {}

    def template(self, path: str) -> str:
        found = self._known.get(path)
        if found is None:
            if len(self._known) >= self.capacity:
                # Forget it all rather than track recency: refilling costs one regex per path.
                self._known.clear()
            found = self._known[path] = route_template(path)
        return found
