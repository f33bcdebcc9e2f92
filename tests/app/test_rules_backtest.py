"""Backtest on the real stack: transactions and labels stored through the service, a rule
backtested over them, and every figure recounted by brute force over plain SQL rows."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.core.backtest import backtest
from app.core.rules import Rule, compile_rule
from app.main import create_app
from app.postgres import codec
from app.postgres.rules import PgRuleStore
from app.tools.cli import cli
from tests.app.conftest import ADMIN, LABELER, SCORER, label, settings_for, tx

RULE = '(amount > 800.0 && channel == "ecom") || card_count_1d >= 3.0'
TRANSACTIONS = 300


def brute_hit(row: dict[str, Any]) -> bool:
    payload = codec.rest_fields(row["payload_rest"])
    features = dict(zip(row["names"], row["features"], strict=True))
    big_ecom = float(payload["amount"]) > 800.0 and payload.get("channel") == "ecom"
    return big_ecom or features["card_count_1d"] >= 3.0


async def _rows(url: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT t.event_time, t.payload_rest, t.decision, t.features, f.names,"
            " i.label_is_fraud FROM scored_transactions t"
            " JOIN transaction_ids i ON i.transaction_id = t.transaction_id"
            " JOIN feature_sets f ON f.id = t.feature_set"
            " WHERE t.event_time >= $1 AND t.event_time < $2",
            since,
            until,
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


def recount(url: str, since: datetime, until: datetime) -> dict[str, Any]:
    rows = asyncio.run(_rows(url, since, until))
    hits = [r for r in rows if brute_hit(r)]
    labelled = [r for r in hits if r["label_is_fraud"] is not None]
    frauds = sum(1 for r in labelled if r["label_is_fraud"])
    per_day = Counter(r["event_time"].astimezone(UTC).date().isoformat() for r in hits)
    return {
        "rows_scanned": len(rows),
        "hits": len(hits),
        "hit_rate": len(hits) / len(rows),
        "labelled_hits": len(labelled),
        "frauds_caught": frauds,
        "precision": frauds / len(labelled) if labelled else None,
        "model_overlap": sum(1 for r in hits if r["decision"] in ("review", "decline")),
        "errors": 0,
        "truncated": False,
        "hits_per_day": dict(sorted(per_day.items())),
    }


async def _labelled(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        sql = "SELECT count(*) FROM transaction_ids WHERE label_is_fraud IS NOT NULL"
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


@pytest.fixture
def stored(fresh_database: str, api_redis_url: str) -> Iterator[tuple[TestClient, datetime]]:
    """300 seeded transactions over three days, 60% of them labelled, all settled."""
    settings = settings_for(
        fresh_database,
        api_redis_url,
        scoring={"warmup_labels": 0, "warmup_frauds": 0, "review_threshold": 0.3},
    )
    rng = random.Random(19)
    now = datetime.now(UTC).replace(microsecond=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        labels = 0
        for _ in range(TRANSACTIONS):
            body = tx(
                card_id=f"card_{rng.randrange(25)}",
                amount=round(rng.uniform(1, 2000), 2),
                channel=rng.choice(["pos", "ecom", "atm"]),
                timestamp=(now - timedelta(minutes=rng.randrange(60, 3 * 24 * 60))).isoformat(),
            )
            assert client.post("/v1/transactions", json=body, headers=SCORER).status_code == 200
            if rng.random() < 0.6:
                fraud = rng.random() < (0.6 if body["amount"] > 800 else 0.1)
                answer = client.post(
                    "/v1/labels", json=label(body["transaction_id"], fraud), headers=LABELER
                )
                assert answer.status_code == 202
                labels += 1
        for _ in range(200):  # the learner settles labels in the background
            if asyncio.run(_labelled(fresh_database)) == labels:
                break
            time.sleep(0.05)
        assert asyncio.run(_labelled(fresh_database)) == labels
        yield client, now


def test_backtest_figures_match_a_brute_force_recount(
    stored: tuple[TestClient, datetime], fresh_database: str
) -> None:
    client, now = stored
    for since, until in (
        (now - timedelta(days=4), now + timedelta(hours=1)),  # everything
        (now - timedelta(days=2), now - timedelta(days=1)),  # a window: event-time bounds
    ):
        window = {"expression": RULE, "since": since.isoformat(), "until": until.isoformat()}
        answer = client.post("/v1/rules/backtest", json=window, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        figures = answer.json()
        expected = recount(fresh_database, since, until)
        assert {k: figures[k] for k in expected} == expected
        assert 0 < figures["hits"] < figures["rows_scanned"]
    assert expected["rows_scanned"] < TRANSACTIONS
    everything = recount(fresh_database, now - timedelta(days=4), now + timedelta(hours=1))
    assert everything["rows_scanned"] == TRANSACTIONS and everything["labelled_hits"] > 20


def test_backtest_pages_and_stops_at_the_row_bound(
    stored: tuple[TestClient, datetime], fresh_database: str
) -> None:
    _, now = stored
    since, until = now - timedelta(days=4), now + timedelta(hours=1)
    candidate = compile_rule(Rule(id="c", name="", expression=RULE, action="review"))

    async def run(max_rows: int) -> dict[str, Any]:
        pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=2)
        try:
            store = PgRuleStore(pool, chunk=7)  # many keyset pages
            return (await backtest(candidate, store, since, until, max_rows)).as_dict()
        finally:
            await pool.close()

    full = asyncio.run(run(TRANSACTIONS))
    expected = recount(fresh_database, since, until)
    assert {k: full[k] for k in expected} == expected  # exactly the bound
    cut = asyncio.run(run(50))
    assert (cut["rows_scanned"], cut["truncated"]) == (50, True)
    assert cut["hits"] <= full["hits"]


def test_cli_backtest_prints_the_same_figures(
    stored: tuple[TestClient, datetime], fresh_database: str
) -> None:
    _, now = stored
    since, until = now - timedelta(days=4), now + timedelta(hours=1)
    env = {"RIVERGUARD_DATABASE_URL": fresh_database}
    window = ["--since", since.isoformat(), "--until", until.isoformat()]
    command = ["rules", "backtest", "--expression", RULE, *window, "--json"]
    result = CliRunner().invoke(cli, command, env=env)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    expected = recount(fresh_database, since, until)
    assert {k: figures[k] for k in expected} == expected
    bad = CliRunner().invoke(
        cli, ["rules", "backtest", "--expression", 'amount > "4111111111111112"', *window], env=env
    )
    assert bad.exit_code == 2 and "rule_type" in bad.output and "4111" not in bad.output
