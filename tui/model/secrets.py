"""Which headers carry secrets, and how they are shown until the user reveals them.

A masked value keeps what helps debugging and is not secret: the auth scheme (``Bearer``), the
cookie names, the Set-Cookie attributes. The mask has a fixed length, so it does not leak the
secret's length either.
"""

from __future__ import annotations

SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
MASK = "••••••"


def is_secret(name: str, secret_headers: frozenset[str] = SECRET_HEADERS) -> bool:
    return name.lower() in secret_headers


def mask(name: str, value: str, secret_headers: frozenset[str] = SECRET_HEADERS) -> str:
    """``value`` as shown while secrets are hidden (unchanged if ``name`` is not secret)."""
    key = name.lower()
    if key not in secret_headers:
        return value
    if key in ("authorization", "proxy-authorization"):
        scheme, space, _credentials = value.strip().partition(" ")
        return f"{scheme} {MASK}" if space else MASK
    if key == "cookie":
        return "; ".join(_mask_pair(pair) for pair in value.split(";") if pair.strip())
    if key == "set-cookie":
        first, *attributes = value.split(";")
        return "; ".join([_mask_pair(first), *(a.strip() for a in attributes)])
    return MASK


def _mask_pair(pair: str) -> str:
    name, equals, _value = pair.strip().partition("=")
    return f"{name}={MASK}" if equals else MASK


def masked_headers(
    headers: list[tuple[str, str]], secret_headers: frozenset[str] = SECRET_HEADERS
) -> list[tuple[str, str]]:
    return [(name, mask(name, value, secret_headers)) for name, value in headers]
