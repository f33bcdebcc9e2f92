"""A shadow rule in the console over HTTP on the real stack: its page shows the live figures
``GET /v1/rules/{id}/shadow`` answers over the same window (24 h, 7 d, 30 d), a rule not in
shadow shows none, only an ``admin`` session sees them, and "Enable (start deciding)" makes it
decide (with four-eyes on: a proposal)."""

from __future__ import annotations

import asyncio
import html
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from app.config import ConsoleSettings, DecisionSettings
from app.console import rules as console_rules
from app.console.pages import percent
from tests.app.conftest import ADMIN, fetchval
from tests.app.console_helpers import SECRET, sign_in
from tests.app.seeded_traffic import RULE, seed_traffic, service

KEYS = "admin-key=score|label|admin@ops,score-key=score,label-key=label,ana-key=review@ana"
SHADOW = {"id": "big-ecom", "expression": RULE, "action": "decline", "shadow": True}
PLAIN = {"id": "plain", "expression": "amount > 1.0", "action": "review", "enabled": False}
_TIME = re.compile(r'<time id="sh-(since|until)" datetime="([^"]+)"')


@pytest.fixture
def live(fresh_database: str, api_redis_url: str) -> Iterator[tuple[TestClient, datetime]]:
    """A shadow rule and a disabled one saved, then 300 seeded transactions (60% labelled)."""
    console = ConsoleSettings(secret=SECRET)
    with service(fresh_database, api_redis_url, api_keys=KEYS, console=console) as (client, now):
        for rule in (SHADOW, PLAIN):
            saved = client.post("/v1/rules", json=rule, headers=ADMIN)
            assert saved.status_code == 201, saved.text
        seed_traffic(client, fresh_database, 29, now)
        yield client, now


def _window_of(page: str) -> dict[str, str]:
    found = dict(_TIME.findall(page))
    assert set(found) == {"since", "until"}, "no shadow window on the page"
    return {k: html.unescape(v) for k, v in found.items()}


def _shown(figures: dict[str, Any]) -> list[str]:
    """The figures' cells as the page writes them."""
    labelled = f"{figures['frauds_caught']} frauds of {figures['labelled_hits']} labelled hits"
    return [
        f'<dd id="sh-rows">{figures["rows_scanned"]}</dd>',
        f'<dd id="sh-hits">{figures["hits"]} ({percent(figures["hit_rate"])})</dd>',
        f'<dd id="sh-overlap">{figures["model_overlap"]} hits the model also sent',
        f'<dd id="sh-precision">{percent(figures["precision"])} ({labelled})</dd>',
    ]


def test_the_page_shows_the_rest_figures_of_the_same_window(
    live: tuple[TestClient, datetime],
) -> None:
    client, _ = live
    csrf = sign_in(client, "admin-key")
    hits: dict[str, int] = {}
    # 7 d by default, and for a window not offered or no number at all
    for window in ("", "1", "30", "365", "9" * 5000):
        page = client.get("/console/rules/big-ecom", params={"window": window} if window else {})
        assert page.status_code == 200, page.text
        assert '<dd id="rule-state">shadow</dd>' in page.text
        assert "Enable (start deciding)" in page.text and 'id="sh-slow"' not in page.text
        span = _window_of(page.text)
        rest = client.get("/v1/rules/big-ecom/shadow", params=span, headers=ADMIN)
        assert rest.status_code == 200, rest.text
        figures = rest.json()
        for cell in _shown(figures):
            assert cell in page.text, cell
        for day, n in figures["hits_per_day"].items():
            assert f"<title>{day}: {n}</title>" in page.text  # the chart's bars
        hits[window] = figures["hits"]
    # the window matters: the last 24 h hold some of the 3 days' hits, 30 d all of them
    assert 0 < hits["1"] < hits[""] == hits["30"] == hits["365"] == hits["9" * 5000]
    # a backtest of the stored shadow rule over 7 days finds the hits it had live
    tested = client.post("/console/rules/big-ecom/backtest", data={"csrf": csrf, "days": "7"})
    assert tested.status_code == 200, tested.text
    assert f'<dd id="bt-hits">{hits[""]} (' in tested.text and 'id="sh-hits"' in tested.text
    listing = client.get("/console/rules")
    row = re.search(r'<tr id="rule-big-ecom">.*?</tr>', listing.text, re.S)
    assert row and 'class="badge"' in row.group(0) and ">shadow</a>" in row.group(0)
    plain = re.search(r'<tr id="rule-plain">.*?</tr>', listing.text, re.S)
    assert plain and 'class="badge"' not in plain.group(0)


def test_a_rule_not_in_shadow_shows_no_figures(live: tuple[TestClient, datetime]) -> None:
    client, _ = live
    sign_in(client, "admin-key")
    page = client.get("/console/rules/plain")
    assert page.status_code == 200
    assert '<dd id="rule-state">disabled</dd>' in page.text
    assert 'id="shadow"' not in page.text and 'id="sh-hits"' not in page.text
    assert "Enable (start deciding)" not in page.text


def test_enable_starts_deciding_and_the_figures_go(live: tuple[TestClient, datetime]) -> None:
    client, _ = live
    csrf = sign_in(client, "admin-key")
    no_token = client.post("/console/rules/big-ecom/enabled", data={"enabled": "true"})
    assert no_token.status_code == 403
    assert fetchval(client, "SELECT shadow FROM rules WHERE id = 'big-ecom'") is True
    enabled = client.post("/console/rules/big-ecom/enabled", data={"csrf": csrf, "enabled": "true"})
    assert enabled.status_code == 200
    assert '<dd id="rule-state">enabled</dd>' in enabled.text and 'id="shadow"' not in enabled.text
    rule = client.get("/v1/rules/big-ecom", headers=ADMIN).json()
    assert (rule["enabled"], rule["shadow"]) == (True, False)
    history = client.get("/v1/rules/big-ecom/history", headers=ADMIN).json()["history"]
    assert history[-1]["changed_by"] == "ops"


def test_the_figures_need_an_admin_session(live: tuple[TestClient, datetime]) -> None:
    client, _ = live
    assert client.get("/console/rules/big-ecom", follow_redirects=False).status_code == 303
    csrf = sign_in(client, "ana-key")  # review only
    page = client.get("/console/rules/big-ecom")
    assert page.status_code == 403 and 'id="sh-hits"' not in page.text
    enable = {"csrf": csrf, "enabled": "true"}
    assert client.post("/console/rules/big-ecom/enabled", data=enable).status_code == 403
    assert fetchval(client, "SELECT shadow FROM rules WHERE id = 'big-ecom'") is True


FOUR_EYES_KEYS = "ops-key=admin|review@ops,boss-key=admin|approve@boss"


def test_with_four_eyes_enabling_a_shadow_rule_is_a_proposal(
    fresh_database: str, api_redis_url: str
) -> None:
    console = ConsoleSettings(secret=SECRET)
    decisions = DecisionSettings(four_eyes=True)
    with service(
        fresh_database, api_redis_url, api_keys=FOUR_EYES_KEYS, console=console,
        decisions=decisions,
    ) as (client, _):  # fmt: skip
        boss, ops = {"X-API-Key": "boss-key"}, {"X-API-Key": "ops-key"}
        proposal = client.post("/v1/rules", json=SHADOW, headers=ops)
        assert proposal.status_code == 202, proposal.text
        approved = client.post(f"/v1/proposals/{proposal.json()['id']}/approve", headers=boss)
        assert approved.json()["status"] == "approved", approved.text
        csrf = sign_in(client, "ops-key")
        page = client.get("/console/rules/big-ecom")
        assert page.status_code == 200 and '<dd id="sh-rows">0</dd>' in page.text
        answer = client.post(
            "/console/rules/big-ecom/enabled",
            data={"csrf": csrf, "enabled": "true"},
            follow_redirects=False,
        )
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/proposals?proposed=")
        assert fetchval(client, "SELECT shadow FROM rules WHERE id = 'big-ecom'") is True
        pending = "SELECT payload->>'shadow' FROM proposals WHERE status = 'pending'"
        assert fetchval(client, pending) == "false"


@contextmanager
def scored_locked(database_url: str) -> Iterator[None]:
    """``scored_transactions`` locked by another connection: no query reads it meanwhile."""
    ready, done = threading.Event(), threading.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE scored_transactions IN ACCESS EXCLUSIVE MODE")
                ready.set()
                await asyncio.to_thread(done.wait)
        finally:
            await conn.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert ready.wait(30), "the lock was not taken"
        yield
    finally:
        done.set()
        thread.join()


def test_figures_that_take_too_long_give_way_to_a_notice(
    fresh_database: str, api_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console_rules, "SHADOW_SECONDS", 0.5)
    console = ConsoleSettings(secret=SECRET)
    with service(fresh_database, api_redis_url, api_keys=KEYS, console=console) as (client, _):
        assert client.post("/v1/rules", json=SHADOW, headers=ADMIN).status_code == 201
        sign_in(client, "admin-key")
        with scored_locked(fresh_database):
            page = client.get("/console/rules/big-ecom")
            assert page.status_code == 200
            assert 'id="sh-slow"' in page.text and 'id="sh-hits"' not in page.text
            assert "Enable (start deciding)" in page.text
        again = client.get("/console/rules/big-ecom")  # the pool's connection came back
        assert '<dd id="sh-rows">0</dd>' in again.text and 'id="sh-slow"' not in again.text
