"""Console room: the signed session cookie, CSRF tokens and the scope guard of every page.

A session is a cookie signed with the console secret (itsdangerous, HMAC-SHA1 over a
key derived per purpose) holding the API key's *name*, its scopes, an expiry and a random
CSRF token — never the key. It is HttpOnly, SameSite=Strict, scoped to ``/console`` and
Secure when the request came over TLS. On every request the name is looked up in the key ring
as configured now, so a key removed from ``RIVERGUARD_API_KEYS`` ends its sessions at the next
restart, and the session's scopes are those the key still holds. Every form posts the CSRF
token; a mismatch is refused before the form is read further.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeSerializer

from app.console.state import keyring

COOKIE = "rg_console"
LOGIN_COOKIE = "rg_console_login"  # the sign-in form's CSRF nonce (there is no session yet)
PATH = "/console"
MAX_FIELDS = 64


class SignInNeeded(Exception):
    """No valid session: the page redirects to the sign-in form."""


class Refused(Exception):
    """A 4xx page: a missing scope (403), a bad CSRF token (403), a bad form (400)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Session:
    name: str
    scopes: frozenset[str]
    expires: float
    csrf: str


class Sessions:
    """Signs and reads session cookies for one console (one secret, one lifetime)."""

    def __init__(self, secret: str, lifetime_seconds: float) -> None:
        self._session = URLSafeSerializer(secret, salt="riverguard.console.session")
        self._login = URLSafeSerializer(secret, salt="riverguard.console.login")
        self.lifetime = lifetime_seconds

    def new(self, name: str, scopes: frozenset[str]) -> Session:
        return Session(name, scopes, time.time() + self.lifetime, secrets.token_urlsafe(24))

    def dumps(self, session: Session) -> str:
        payload = {"n": session.name, "s": sorted(session.scopes), "e": session.expires,
                   "c": session.csrf}  # fmt: skip
        return str(self._session.dumps(payload))

    def loads(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data: Any = self._session.loads(cookie)
            session = Session(str(data["n"]), frozenset(data["s"]), float(data["e"]), data["c"])
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        return session if session.expires > time.time() else None

    def login_nonce(self) -> tuple[str, str]:
        """(nonce for the form, signed cookie value holding it)."""
        nonce = secrets.token_urlsafe(16)
        return nonce, str(self._login.dumps({"n": nonce, "e": time.time() + 600}))

    def login_nonce_ok(self, cookie: str | None, presented: str) -> bool:
        try:
            data: Any = self._login.loads(cookie or "")
            ok = float(data["e"]) > time.time() and isinstance(data["n"], str)
        except (BadSignature, KeyError, TypeError, ValueError):
            return False
        return ok and hmac.compare_digest(data["n"].encode(), presented.encode())


def sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.console_sessions
    return found


def is_tls(request: Request) -> bool:
    """TLS to us, or to the proxy in front (a forwarded scheme only ever adds Secure)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path=PATH,
        secure=is_tls(request),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=PATH, secure=is_tls(request), httponly=True, samesite="strict"
    )


def current(request: Request) -> Session | None:
    """The request's session, with the scopes its key holds now; None when there is none."""
    session = sessions(request).loads(request.cookies.get(COOKIE))
    if session is None:
        return None
    principal = keyring(request).by_name(session.name)
    if principal is None:
        return None
    return Session(session.name, session.scopes & principal.scopes, session.expires, session.csrf)


def need(request: Request, scope: str | None = None) -> Session:
    """The session of a page needing ``scope`` (None: any signed-in key)."""
    session = current(request)
    if session is None:
        raise SignInNeeded
    if scope is not None and scope not in session.scopes:
        raise Refused(403, f"This page needs the '{scope}' scope, which your key lacks.")
    return session


async def form(request: Request) -> dict[str, str]:
    """The posted form fields (urlencoded; the body size is bounded by the app's middleware)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise Refused(415, "Forms are posted as application/x-www-form-urlencoded.")
    try:
        text = (await request.body()).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "The form could not be read.") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if "\x00" in value:
            raise Refused(400, "A field of the form holds a NUL character.")
        fields.setdefault(key, value)
    return fields


async def posted(request: Request, scope: str | None = None) -> tuple[Session, dict[str, str]]:
    """The session and form of a POST needing ``scope``; 403 without the session's CSRF token."""
    session = need(request, scope)
    fields = await form(request)
    token = fields.get("csrf", "")
    if not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise Refused(403, "The form's security token is missing or stale: reload the page.")
    return session, fields
