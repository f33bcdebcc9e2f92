"""Helpers of the console tests: settings, signing in through the form, reading tokens."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi.testclient import TestClient

from app.config import ConsoleSettings, Settings
from tests.app.conftest import REVIEW_ALL, settings_for

KEYS = "admin-key=score|label|admin|review@ops,ana-key=review@ana,score-key=score@shop"
ADMIN_KEY, ANALYST_KEY = "admin-key", "ana-key"
API = {"X-API-Key": "admin-key"}
SECRET = "console-test-secret"
XSS = "<img src=x onerror=alert(1)>"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def console_settings(database_url: str, redis_url: str, **extra: Any) -> Settings:
    """A service whose every transaction is decided review (no warm-up, review at 0)."""
    extra.setdefault("scoring", REVIEW_ALL)
    extra.setdefault("api_keys", KEYS)
    return settings_for(database_url, redis_url, console=ConsoleSettings(secret=SECRET), **extra)


def csrf_of(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "no CSRF token on the page"
    return html.unescape(found.group(1))


def session_cookie(client: TestClient) -> str:
    """The value of the session cookie the client holds."""
    value = client.cookies.get("rg_console", path="/console")
    assert value, "no session cookie"
    return value


def sign_in(client: TestClient, key: str) -> str:
    """Sign in through the form; the session's CSRF token."""
    form = client.get("/console/login")
    assert form.status_code == 200
    answer = client.post(
        "/console/login",
        data={"csrf": csrf_of(form.text), "key": key, "next": "/console/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    page = client.get("/console/")
    assert page.status_code == 200
    return csrf_of(page.text)
