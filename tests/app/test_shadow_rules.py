"""Shadow rules on the real stack: a rule in shadow mode runs on live traffic without
deciding; its live figures over a window equal the backtest's over the same window; one call
enables it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import ADMIN, SCORER, tx
from tests.app.seeded_traffic import RULE, count, everything, seed_traffic, service, windows

FIGURES = ("rows_scanned", "hits", "labelled_hits", "frauds_caught", "model_overlap")


@pytest.fixture
def live(fresh_database: str, api_redis_url: str) -> Iterator[tuple[TestClient, datetime]]:
    """A shadow rule saved first, then 300 seeded transactions (60% labelled, settled)."""
    with service(fresh_database, api_redis_url) as (client, now):
        rule = {"id": "big-ecom", "expression": RULE, "action": "decline", "shadow": True}
        saved = client.post("/v1/rules", json=rule, headers=ADMIN)
        assert saved.status_code == 201, saved.text
        assert (saved.json()["enabled"], saved.json()["shadow"]) == (False, True)
        answers = seed_traffic(client, fresh_database, 23, now)
        assert all(answer["decided_by"] != "rule" for answer in answers)
        yield client, now


def test_shadow_hits_equal_the_backtest_and_decide_nothing(
    live: tuple[TestClient, datetime], fresh_database: str
) -> None:
    client, now = live
    for since, until in windows(now):
        window = {"since": since.isoformat(), "until": until.isoformat()}
        shadow = client.get("/v1/rules/big-ecom/shadow", params=window, headers=ADMIN)
        assert shadow.status_code == 200, shadow.text
        back = client.post("/v1/rules/backtest", json={"expression": RULE, **window}, headers=ADMIN)
        assert back.status_code == 200, back.text
        live_figures, backtest = shadow.json(), back.json()
        assert {k: live_figures[k] for k in FIGURES} == {k: backtest[k] for k in FIGURES}
        assert live_figures["hits_per_day"] == backtest["hits_per_day"]
        assert live_figures["precision"] == backtest["precision"]
        assert 0 < live_figures["hits"] < live_figures["rows_scanned"]
    # everything's hits are the counter's, and no decision was the rule's
    metrics = client.get("/metrics").text
    line = 'riverguard_rule_shadow_hits_total{rule="big-ecom"}'
    counted = next(float(x.split()[-1]) for x in metrics.splitlines() if x.startswith(line))
    assert counted == backtest_hits(client, now)
    decided = "SELECT count(*) FROM scored_transactions WHERE decided LIKE 'rule:%'"
    assert count(fresh_database, decided) == 0


def backtest_hits(client: TestClient, now: datetime) -> int:
    since, until = everything(now)
    window = {"expression": RULE, "since": since.isoformat(), "until": until.isoformat()}
    return int(client.post("/v1/rules/backtest", json=window, headers=ADMIN).json()["hits"])


def test_one_call_enables_a_shadow_rule(live: tuple[TestClient, datetime]) -> None:
    client, now = live
    shadowed = {"id": "shadowed", "expression": "amount > 1.0", "action": "review", "shadow": True}
    assert client.post("/v1/rules", json=shadowed, headers=ADMIN).json()["enabled"] is False
    enabled = client.post("/v1/rules/big-ecom/enable", headers=ADMIN)
    assert enabled.status_code == 200, enabled.text
    assert (enabled.json()["enabled"], enabled.json()["shadow"]) == (True, False)
    body = tx(amount=1500.0, channel="ecom", timestamp=(now - timedelta(minutes=5)).isoformat())
    answer = client.post("/v1/transactions", json=body, headers=SCORER).json()
    assert (answer["decision"], answer["decided_by"], answer["rule_id"]) == (
        "decline",
        "rule",
        "big-ecom",
    )
    history = client.get("/v1/rules/big-ecom/history", headers=ADMIN).json()["history"]
    assert history[-1]["change"] == {"enabled": [False, True], "shadow": [True, False]}
    assert client.post("/v1/rules/nope/enable", headers=ADMIN).status_code == 404
