"""Console room: the template environment and the HTML answer every page returns.

Autoescaping is on for every template, so a value from a transaction (a merchant id of
``<img src=x onerror=alert(1)>``) is text. Every page also carries a Content-Security-Policy
that allows scripts and styles from this origin only: even a value that escaped escaping
could not run. Card-like values go through the ``masked`` filter (card numbers are refused at
intake; this is the second line).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app.console.session import Session
from features.schema import redact_pans

TEMPLATES = Path(__file__).parent / "templates"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self';"
    " img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def when(moment: datetime | str | None) -> str:
    """A moment as ``2026-11-20 10:15:00Z`` (UTC), or an em dash."""
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def age(seconds: float | None) -> str:
    """A duration as ``3d 4h``, ``5h 2m``, ``4m 10s``."""
    if seconds is None:
        return "—"
    total = int(max(seconds, 0))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def masked(value: object) -> str:
    return "" if value is None else redact_pans(str(value))


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, age=age, number=number, percent=percent, masked=masked)
    return env


def render(
    request: Request,
    template: str,
    session: Session | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    env: Environment = request.app.state.console_templates
    html = env.get_template(template).render(
        session=session, path=request.url.path, error=context.pop("error", None), **context
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)
