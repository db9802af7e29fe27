"""Traffic a stranger could send: every kind of secret the policy names, and escape sequences.

Each secret kind travels on a connection of its own, as real HTTP/1.1 bytes; every secret value
contains ``s3cr3t`` so that a test can tell, in any output, whether one got through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tests.ui.fakes import SERVICE_IP, SERVICE_PORT, Script, request, response
from tui.model.store import Store

MARK = "s3cr3t"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.s3cr3t-jwt-signature-0123"
"""A JWT whose header and claims may be shown; only its signature is secret."""


@dataclass(frozen=True)
class SecretKind:
    name: str
    request: bytes
    response: bytes
    in_request: bool
    """The secret is in the request (so copy as curl must mask it)."""
    in_headers: bool
    """The secret is in a start line or a header, of either side (dump --http prints those)."""


def _redirect(location: str) -> bytes:
    return (f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n").encode()


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _post(target: str, body: bytes, content_type: str) -> bytes:
    return request("POST", target, [("Content-Type", content_type)], body)


SECRET_KINDS = [
    SecretKind(
        "url userinfo",
        request("GET", f"http://bob:{MARK}-pw@shop.local/admin"),
        response(204),
        True,
        True,
    ),
    SecretKind(
        "access_token parameter",
        request("GET", f"/api?access_token={MARK}1&page=2"),
        response(204),
        True,
        True,
    ),
    SecretKind(
        "api_key parameter", request("GET", f"/api?api_key={MARK}2"), response(204), True, True
    ),
    *(
        SecretKind(
            f"{header} header",
            request("GET", "/api", [(header, f"{MARK}-{header}")]),
            response(204),
            True,
            True,
        )
        for header in ("X-Api-Key", "X-Auth-Token", "X-Amz-Security-Token", "X-CSRF-Token")
    ),
    SecretKind(
        "authorization header",
        request("GET", "/", [("Authorization", f"Basic {MARK}")]),
        response(204),
        True,
        True,
    ),
    SecretKind(
        "cookie header",
        request("GET", "/", [("Cookie", f"sid={MARK}; theme=dark")]),
        response(204),
        True,
        True,
    ),
    SecretKind(
        "set-cookie header",
        request("GET", "/login"),
        response(204, headers=[("Set-Cookie", f"sid={MARK}; HttpOnly")]),
        False,
        True,
    ),
    SecretKind(
        "json password",
        _post("/login", _json({"user": "bob", "password": MARK}), "application/json"),
        response(204),
        True,
        False,
    ),
    SecretKind(
        "json refresh and id tokens",
        request("POST", "/token"),
        response(
            200,
            _json({"refresh_token": f"{MARK}-r", "id_token": f"{MARK}-i", "token_type": "Bearer"}),
        ),
        False,
        False,
    ),
    SecretKind(
        "form password",
        _post("/login", f"user=bob&password={MARK}".encode(), "application/x-www-form-urlencoded"),
        response(204),
        True,
        False,
    ),
    SecretKind(
        "saml response",
        _post(
            "/acs",
            f"SAMLResponse={MARK}&RelayState=x".encode(),
            "application/x-www-form-urlencoded",
        ),
        response(204),
        True,
        False,
    ),
    SecretKind(
        "oauth redirect code",
        request("GET", "/authorize"),
        _redirect(f"https://app.local/callback?code={MARK}&state={MARK}-st"),
        False,
        True,
    ),
    SecretKind(
        "oauth callback code and state",
        request("GET", f"/cb?code={MARK}&state=abc"),
        response(204),
        True,
        True,
    ),
    SecretKind(
        "a malformed head quoting a key",
        f"GET / HTTP/1.1\r\nHost: shop\r\nX-Api-Key : {MARK}\r\n\r\n".encode(),
        # Only the error quotes it: the request's headers could not be decoded.
        response(204),
        False,
        True,
    ),
    SecretKind(
        "jwt signature", request("GET", "/", [("X-Forwarded-Jwt", JWT)]), response(204), True, True
    ),
    SecretKind(
        "bearer jwt",
        request("GET", "/", [("Authorization", f"Bearer {JWT}")]),
        response(204),
        True,
        True,
    ),
]


def secret_script(kinds: list[SecretKind] = SECRET_KINDS) -> Script:
    s = Script().hello()
    for conn, kind in enumerate(kinds):
        s.open(conn, "198.18.0.1", 40000 + conn)
        s.exchange(conn, kind.request, kind.response)
        s.close(conn)
    return s


def secret_store() -> Store:
    store = Store()
    store.apply(secret_script().updates())
    return store


OSC52 = "\x1b]52;c;cGF5bG9hZA==\x1b\\"
"""Writes "payload" to the clipboard of a terminal that obeys it."""
OSC0 = "\x1b]0;pwned\x07"
"""Retitles the terminal's window."""


def escape_script() -> Script:
    """A request and a response carrying escape sequences in header values and bodies (the
    request's body long enough to be shown as text, not hex)."""
    s = Script().hello()
    s.open(0, "198.18.0.1", 41000)
    s.exchange(
        0,
        request(
            "POST",
            "/upload",
            [("X-Note", f"clip{OSC52}"), ("Content-Type", "text/plain")],
            f"title{OSC0}body {'of text ' * 30}".encode(),
        ),
        response(
            200, f"reply{OSC0}".encode(), [("X-Reply", f"t{OSC0}")], content_type="text/plain"
        ),
    )
    return s


SERVER = f"{SERVICE_IP}:{SERVICE_PORT}"
