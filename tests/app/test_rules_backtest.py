"""Backtest on the real stack: transactions and labels stored through the service, a rule
backtested over them, and every figure recounted by brute force over plain SQL rows."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.core.backtest import backtest
from app.core.rules import Rule, compile_rule
from app.postgres import codec
from app.postgres.rules import PgRuleStore
from app.tools.cli import cli
from tests.app.conftest import ADMIN
from tests.app.seeded_traffic import RULE, TRANSACTIONS, everything, seed_traffic, service, windows


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


@pytest.fixture
def stored(fresh_database: str, api_redis_url: str) -> Iterator[tuple[TestClient, datetime]]:
    """300 seeded transactions over three days, 60% of them labelled, all settled."""
    with service(fresh_database, api_redis_url) as (client, now):
        seed_traffic(client, fresh_database, 19, now)
        yield client, now


def test_backtest_figures_match_a_brute_force_recount(
    stored: tuple[TestClient, datetime], fresh_database: str
) -> None:
    client, now = stored
    for since, until in windows(now):
        window = {"expression": RULE, "since": since.isoformat(), "until": until.isoformat()}
        answer = client.post("/v1/rules/backtest", json=window, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        figures = answer.json()
        expected = recount(fresh_database, since, until)
        assert {k: figures[k] for k in expected} == expected
        assert 0 < figures["hits"] < figures["rows_scanned"]
    assert expected["rows_scanned"] < TRANSACTIONS
    whole = recount(fresh_database, *everything(now))
    assert whole["rows_scanned"] == TRANSACTIONS and whole["labelled_hits"] > 20


def test_backtest_pages_and_stops_at_the_row_bound(
    stored: tuple[TestClient, datetime], fresh_database: str
) -> None:
    _, now = stored
    since, until = everything(now)
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
    since, until = everything(now)
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
