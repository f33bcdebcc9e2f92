"""Console room: the session cookie, CSRF tokens and the scope guard of every page.

A session is a row on the server (:mod:`app.core.sessions`, in Postgres) and a cookie signed
with the console secret (itsdangerous, HMAC over a key derived per purpose) holding only the
session's random id — never the key, its name or its scopes. The row binds the session to its
key's fingerprint; every console request reads it once (:func:`resolve`, a primary-key read)
and asks the key ring, as configured in this process, for the fingerprint's key: a session
whose key was rotated or removed is refused, and the key's name and scopes are its own now.
Signing out deletes the row, so the session ends in every process at once. Only keys with a
console scope (``review`` or ``admin``) sign in or see a page. The cookie is HttpOnly,
SameSite=Strict, scoped to ``/console`` and Secure when the request came over TLS. Every
form posts the session's CSRF token; a mismatch is refused before the form is read further.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeSerializer

from app.console.state import keyring, services
from app.core import keys
from app.core.sessions import CONSOLE_SCOPES, SessionRecord, SessionStore, id_hash

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
    """A live session: its key's name and scopes as configured now, its CSRF token."""

    name: str
    scopes: frozenset[str]
    expires: float
    csrf: str
    hashed: bytes = b""  # the stored id hash (sign-out ends it)


class Sessions:
    """Opens, reads and ends sessions for one console (one secret, one lifetime)."""

    def __init__(self, secret: str, lifetime_seconds: float) -> None:
        self._session = URLSafeSerializer(secret, salt="riverguard.console.session")
        self._login = URLSafeSerializer(secret, salt="riverguard.console.login")
        # its own key: a fingerprint reveals nothing of the cookie-signing key, and vice versa
        purpose = b"riverguard.console.fingerprint\0"
        self._fingerprint_key = hashlib.sha256(purpose + secret.encode()).digest()
        self.lifetime = lifetime_seconds

    def fingerprint(self, key_digest: bytes) -> str:
        return keys.fingerprint(self._fingerprint_key, key_digest)

    async def open(self, store: SessionStore, key_digest: bytes) -> str:
        """Store a new session for the key with ``key_digest``; the cookie value to set."""
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        record = SessionRecord(
            id_hash(session_id),
            self.fingerprint(key_digest),
            secrets.token_urlsafe(24),
            now + timedelta(seconds=self.lifetime),
        )
        await store.open(record, now)
        return str(self._session.dumps({"i": session_id}))

    async def resolve(
        self, store: SessionStore, ring: keys.KeyRing, cookie: str | None
    ) -> Session | None:
        """The live session of ``cookie`` with its key as configured now; None when none."""
        if not cookie:
            return None
        try:
            data: Any = self._session.loads(cookie)
            session_id = data["i"]
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        if not isinstance(session_id, str):
            return None
        record = await store.find(id_hash(session_id), datetime.now(UTC))
        if record is None:
            return None
        principal = ring.by_fingerprint(self._fingerprint_key, record.fingerprint)
        if principal is None or not principal.scopes & CONSOLE_SCOPES:
            return None  # the key was rotated, removed or lost its console scopes
        expires = record.expires_at.timestamp()
        return Session(principal.name, principal.scopes, expires, record.csrf, record.id_hash)

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


async def resolve(request: Request) -> None:
    """Dependency of every console route: read the request's session once, before the page."""
    request.state.console_session = await sessions(request).resolve(
        services(request).sessions, keyring(request), request.cookies.get(COOKIE)
    )


def current(request: Request) -> Session | None:
    """The request's session (read by :func:`resolve`); None when there is none."""
    found: Session | None = getattr(request.state, "console_session", None)
    return found


def need(request: Request, scope: str | None = None) -> Session:
    """The session of a page needing ``scope`` (None: any session, so review or admin)."""
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
