"""What podtap treats as secret, and how it is shown until the user reveals it.

One policy for every output (the app, its raw view, ``dump --http``, copy as curl, HAR, ``w``),
for headers, URLs and bodies alike, and for the WebSocket and gRPC messages after them;
docs/secrets.md lists the rules in prose. In short, a value is secret when

- its name (a header, a query parameter, a form field, a JSON key) matches
  :data:`SECRET_NAME_PATTERNS` once lowercased and stripped of ``-``, ``_``, ``.`` and spaces;
- it is the password of a URL's userinfo (``https://user:PASSWORD@host/``);
- it is the ``code`` or ``state`` of an OAuth redirect (both in one query, or either in a
  ``Location`` header);
- it is a JWT's signature, wherever the JWT appears (its header and claims stay readable: they
  help debugging, and without the signature the token cannot be replayed).

A masked value keeps what helps debugging and is not secret: the auth scheme (``Bearer``), the
cookie names, the Set-Cookie attributes, the parameter names. The mask has a fixed length, so it
does not leak the secret's length either.
"""

from __future__ import annotations

import functools
import json
import re
from urllib.parse import parse_qsl

MASK = "••••••"

SECRET_NAME_PATTERNS = (
    "token",
    "secret",
    "passw",
    "pwd",
    "apikey",
    "auth(?!or(?!iz))",
    "session",
    "sessid",
    "cookie",
    "credential",
    "csrf",
    "xsrf",
    "signature",
    "saml",
    "privatekey",
)
"""Regular expressions searched in a normalised name (``X-Api-Key`` → ``xapikey``)."""

NOT_SECRET_NAMES = frozenset(
    {
        "www-authenticate",
        "proxy-authenticate",
        "access-control-allow-credentials",
    }
)
"""Names the patterns match that carry no secret: a challenge, a CORS flag."""

OAUTH_REDIRECT_PARAMETERS = frozenset({"code", "state"})

_SECRET_NAME = re.compile("|".join(SECRET_NAME_PATTERNS))
_NOT_NAME_CHARS = re.compile(r"[-_.\s\[\]]")
_JWT = re.compile(r"\b(eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*\.)([A-Za-z0-9_-]{8,})")
_USERINFO = re.compile(r"(://[^/?#@\s:]*:)([^/?#@\s]+)(@)")
_URL_IN_TEXT = re.compile(r"(?:https?|wss?)://[^\s\"'<>]+|(?<![\w/])/[^\s\"'<>]*\?[^\s\"'<>]*")
_PAIR_IN_TEXT = re.compile(r"(?:(?<=[?&;#\s])|^)([\w.\-\[\]]{1,100})=([^&;#\s]*)", re.MULTILINE)
_JSON_PAIR = re.compile(r'"((?:[^"\\]|\\.){1,100})"(\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\]\s]+)')
_HEADER_LINE = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):([ \t]*)(.*?)(\r?)$", re.MULTILINE)
# "Name: value" inside a line (an error quoting a header, a log line in a body).
_NAMED_VALUE = re.compile(r"(?<![\w-])([\w-]{1,100})([ \t]*:[ \t]*)([^'\"\r\n]*)")


@functools.lru_cache(maxsize=4096)  # a few names recur in every message
def is_secret(name: str) -> bool:
    """Whether a header, query parameter, form field or JSON key named ``name`` is secret."""
    lowered = name.lower()
    if lowered in NOT_SECRET_NAMES:
        return False
    return _SECRET_NAME.search(_NOT_NAME_CHARS.sub("", lowered)) is not None


def mask_jwts(text: str) -> str:
    """``text`` with the signature of every JWT in it masked."""
    if "eyJ" not in text:
        return text
    return _JWT.sub(lambda m: m.group(1) + MASK, text)


def mask_value(value: str) -> str:
    """A secret value: a JWT keeps its header and claims, anything else is masked whole."""
    stripped = value.strip()
    if _JWT.fullmatch(stripped):
        return mask_jwts(stripped)
    return MASK


def mask(name: str, value: str) -> str:
    """Header ``value`` as shown while secrets are hidden."""
    key = name.lower()
    if not is_secret(key):
        if key in ("location", "content-location", "refresh"):
            return mask_url(value, redirect=key != "content-location")
        if key in ("referer", "origin", "link", "forwarded"):
            return mask_url(value)
        return mask_jwts(value)
    if key in ("authorization", "proxy-authorization"):
        scheme, space, credentials = value.strip().partition(" ")
        return f"{scheme} {mask_value(credentials)}" if space else MASK
    if key == "cookie":
        return "; ".join(_mask_pair(pair) for pair in value.split(";") if pair.strip())
    if key == "set-cookie":
        first, *attributes = value.split(";")
        return "; ".join([_mask_pair(first), *(a.strip() for a in attributes)])
    return mask_value(value)


def _mask_pair(pair: str) -> str:
    name, equals, _value = pair.strip().partition("=")
    return f"{name}={MASK}" if equals else MASK


def masked_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, mask(name, value)) for name, value in headers]


def mask_url(url: str, *, redirect: bool = False) -> str:
    """A URL or request target with its userinfo password, secret query parameters (and
    fragment parameters, where implicit OAuth puts tokens) and JWT signatures masked.
    ``redirect``: the URL is where a response sends the browser, so an OAuth ``code`` or
    ``state`` in it is secret even alone."""
    url = _USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), url)
    url, hash_, fragment = url.partition("#")
    url, question, query = url.partition("?")
    if question:
        url += question + mask_form(query, redirect=redirect)
    if hash_:
        url += hash_ + mask_form(fragment, redirect=redirect)
    return mask_jwts(url)


def mask_form(text: str, *, redirect: bool = False) -> str:
    """``a=1&password=2`` with the values of secret names masked (a query or a form body)."""
    pairs = text.split("&")
    names = {_unquoted_name(pair) for pair in pairs}
    oauth = redirect or names >= OAUTH_REDIRECT_PARAMETERS
    shown = []
    for pair in pairs:
        name, equals, value = pair.partition("=")
        plain = _unquoted_name(pair)
        if equals and (is_secret(plain) or (oauth and plain in OAUTH_REDIRECT_PARAMETERS)):
            value = mask_value(value)
        shown.append(name + equals + mask_jwts(value))
    return "&".join(shown)


def _unquoted_name(pair: str) -> str:
    parsed = parse_qsl(pair, keep_blank_values=True)
    return parsed[0][0] if parsed else pair.partition("=")[0]


def mask_json(data: object) -> object:
    """Parsed JSON with the values under secret keys masked, at any depth."""
    if isinstance(data, dict):
        return {key: _masked_member(key, value) for key, value in data.items()}
    if isinstance(data, list):
        return [mask_json(item) for item in data]
    if isinstance(data, str):
        return mask_jwts(data)
    return data


def _masked_member(key: str, value: object) -> object:
    if not is_secret(key):
        return mask_json(value)
    return mask_value(value) if isinstance(value, str) else MASK


def mask_body(body: bytes, content_type: str) -> bytes:
    """A message body as shown while secrets are hidden: JSON keys, form fields, and in any
    other text the ``name=value`` pairs, ``"name": value`` members and JWTs; binary untouched."""
    if len(body) > PREFILTER_FROM and not could_hold_secrets(body):
        return body
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body
    kind = content_type.split(";")[0].strip().lower()
    if "json" in kind:
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:
            masked = mask_json(data)
            return body if masked == data else json.dumps(masked, ensure_ascii=False).encode()
    if kind == "application/x-www-form-urlencoded":
        return mask_form(text.strip()).encode()
    return mask_text(text).encode()


PREFILTER_FROM = 64 * 1024
"""Bytes past which a body is first checked for anything that could be a secret: masking
runs a handful of regular expressions through the text, seconds for 10 MB."""

_NAME_SEPARATORS = b"-_.+[] \t\r\n\f\v\x1c\x1d\x1e\x1f"
"""What names lose before they are matched (``+`` is a space in a form or a query)."""
_SECRET_HINTS = (
    *(re.sub(r"\(.*\)", "", pattern).encode() for pattern in SECRET_NAME_PATTERNS),
    b"eyj",  # a JWT (lower-cased)
    b"@",  # a URL's userinfo
    b"code",
    b"state",  # OAuth
    b"%",
    b"\\u",  # a name percent-encoded, or JSON-escaped
)


def could_hold_secrets(body: bytes) -> bool:
    """False when the policy surely finds nothing to mask in ``body``: ASCII in which no
    secret name (separators and case ignored), JWT, URL password, OAuth parameter or encoded
    name appears; a few C-level passes instead of the masking's regular expressions."""
    if not body.isascii():
        return True  # lower-casing beyond ASCII (the Kelvin sign is a k) is not checked
    names = body.lower().translate(None, _NAME_SEPARATORS)
    return any(hint in names for hint in _SECRET_HINTS)


def mask_message_text(text: str) -> str:
    """A WebSocket message's text, or a gRPC message's fields as text, as shown while secrets
    are hidden: a JSON document like a JSON body, anything else like free text. Messages carry
    no content type, so JSON is recognised by parsing."""
    if text.lstrip()[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:
            masked = mask_json(data)
            return text if masked == data else json.dumps(masked, ensure_ascii=False)
    return mask_text(text)


def mask_text(text: str) -> str:
    """Free text (a connection's raw bytes, a body of unknown kind, an error quoting what it
    could not parse): header lines and ``Name: value`` inside lines, URLs, ``name=value``
    pairs, JSON members and JWTs, masked where the policy says."""
    text = _HEADER_LINE.sub(_masked_header_line, text)
    text = _NAMED_VALUE.sub(_masked_named_value, text)
    text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group()), text)
    text = _PAIR_IN_TEXT.sub(_masked_text_pair, text)
    text = _JSON_PAIR.sub(_masked_json_pair, text)
    return mask_jwts(text)


def _masked_header_line(match: re.Match[str]) -> str:
    name, space, value, cr = match.groups()
    return f"{name}:{space}{mask(name, value)}{cr}"


def _masked_named_value(match: re.Match[str]) -> str:
    name, colon, value = match.groups()
    if not is_secret(name):
        return match.group()
    return f"{name}{colon}{mask(name, value)}"


def _masked_text_pair(match: re.Match[str]) -> str:
    name, value = match.groups()
    if is_secret(name) and value != MASK:
        return f"{name}={mask_value(value)}"
    return match.group()


def _masked_json_pair(match: re.Match[str]) -> str:
    name, colon, value = match.groups()
    if not is_secret(name):
        return match.group()
    shown = mask_value(value[1:-1]) if value.startswith('"') else MASK
    return f'"{name}"{colon}"{shown}"'
