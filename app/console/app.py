"""Console room: :func:`install` mounts the console on the service's application.

Pages under ``/console/``, the static files (one stylesheet, one script) under
``/console/static/``; both left out of the OpenAPI document, which describes the REST API.
The session secret is ``RIVERGUARD_CONSOLE__SECRET`` or, unset, random for this process.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from app.config import Settings
from app.console import cases, lists, overview, proposals, queue, rules, signin
from app.console.pages import environment, render
from app.console.session import Refused, Sessions, SignInNeeded, current, resolve

STATIC = Path(__file__).parent / "static"


async def _sign_in(request: Request, _: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = request.url.path
    return RedirectResponse(f"/console/login?next={quote(target, safe='')}", 303)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return render(request, "message.html", current(request), exc.status, message=exc.message)


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the console on ``app`` (its state is read per request, in the lifespan's app)."""
    configured = settings.console.secret
    secret = configured.get_secret_value() if configured else secrets.token_urlsafe(32)
    app.state.console_sessions = Sessions(secret, settings.console.session_hours * 3600)
    app.state.console_templates = environment()
    app.state.console_today = overview.TodayCache()
    app.add_exception_handler(SignInNeeded, _sign_in)
    app.add_exception_handler(Refused, _refused)
    for module in (signin, overview, queue, cases, rules, lists, proposals):
        app.include_router(module.router, dependencies=[Depends(resolve)])
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
