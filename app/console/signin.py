"""Console room: sign in with an API key (``/console/login``) and sign out.

The key is read from the form, looked up in the key ring (constant time, as the API does)
and forgotten: the stored session keeps its fingerprint, the cookie only the session's id.
A key without a console scope (``review`` or ``admin``) opens no session. Signing out ends
the session on the server, not only in this browser. The sign-in form has no session
yet, so its CSRF token is a nonce in a short-lived signed cookie of its own (a forged form
from another site cannot carry it: the cookie is SameSite=Strict and the nonce unreadable).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from app.console.pages import render
from app.console.session import (
    COOKIE,
    LOGIN_COOKIE,
    clear_cookie,
    current,
    form,
    posted,
    sessions,
    set_cookie,
)
from app.console.state import keyring, services
from app.core import keys
from app.core.sessions import CONSOLE_SCOPES

router = APIRouter(prefix="/console", include_in_schema=False)
_NEXT = re.compile(r"/console/[A-Za-z0-9_./?=&%-]*")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path of ours, never another site."""
    if target and _NEXT.fullmatch(target) and "//" not in target and ".." not in target:
        return target
    return "/console/"


def _form(request: Request, status: int = 200, error: str | None = None) -> Response:
    nonce, cookie = sessions(request).login_nonce()
    nxt = safe_next(request.query_params.get("next"))
    response = render(request, "login.html", None, status, nonce=nonce, next=nxt, error=error)
    set_cookie(request, response, LOGIN_COOKIE, cookie, 600)
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    if current(request) is not None:
        return RedirectResponse("/console/", 303)
    return _form(request)


@router.post("/login")
async def login(request: Request) -> Response:
    fields = await form(request)
    book = sessions(request)
    if not book.login_nonce_ok(request.cookies.get(LOGIN_COOKIE), fields.get("csrf", "")):
        return _form(request, 403, "The sign-in form expired: please try again.")
    presented = fields.get("key", "").strip()
    principal = keyring(request).principal_of(presented)
    if principal is None:
        return _form(request, 401, "This key is not known.")
    if not principal.scopes & CONSOLE_SCOPES:
        return _form(request, 403, "This key has no console scope ('review' or 'admin').")
    cookie = await book.open(services(request).sessions, keys.digest(presented))
    response = RedirectResponse(safe_next(fields.get("next")), 303)
    set_cookie(request, response, COOKIE, cookie, int(book.lifetime))
    clear_cookie(request, response, LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session, _ = await posted(request)
    await services(request).sessions.end(session.hashed)
    response = RedirectResponse("/console/login", 303)
    clear_cookie(request, response, COOKIE)
    return response
