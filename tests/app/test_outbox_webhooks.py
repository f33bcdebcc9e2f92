"""The outbox without Kafka, on the real stack: decisions and review verdicts reach a webhook,
signed; an endpoint that never answers 2xx lands its events in the dead letters after N tries;
the delivery metrics exist at zero from the start."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.app.conftest import ADMIN, KEYS, settings_for, tx
from tests.webhook_receiver import SECRET, Receiver

REVIEWER = {"X-API-Key": "rev-key"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _hooked(database_url: str, redis_url: str, **outbox: Any) -> Settings:
    """No warm-up, a reviewer key named alice, and this outbox."""
    return settings_for(
        database_url,
        redis_url,
        api_keys=f"{KEYS},rev-key=review@alice",
        scoring={"warmup_labels": 0, "warmup_frauds": 0},
        outbox=outbox,
    )


async def _dead(url: str) -> list[tuple[str, str, int]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT endpoint, body, attempts FROM webhook_dead_letters")
        return [(r["endpoint"], json.loads(r["body"])["kind"], r["attempts"]) for r in rows]
    finally:
        await conn.close()


def test_decisions_and_verdicts_reach_webhooks_signed(
    fresh_database: str, api_redis_url: str, receiver: Receiver
) -> None:
    hooks = [
        {"name": "ok", "url": f"{receiver.url}/ok", "secret": SECRET},
        {"name": "down", "url": f"{receiver.url}/fail", "secret": SECRET},
    ]
    settings = _hooked(
        fresh_database,
        api_redis_url,
        webhooks=hooks,
        webhook_max_attempts=2,
        webhook_backoff_seconds=0.05,
        relay_every_seconds=0.05,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        metrics = client.get("/metrics").text
        for endpoint in ("ok", "down"):
            for outcome in ("delivered", "failed", "dead_lettered"):
                series = f'endpoint="{endpoint}",outcome="{outcome}"'
                assert f"riverguard_webhook_deliveries_total{{{series}}} 0.0" in metrics
        rule = {"id": "all-review", "expression": "amount > 0.0", "action": "review"}
        assert client.post("/v1/rules", json=rule, headers=ADMIN).status_code == 201
        at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        body = tx(card_id="card_hook", timestamp=at)
        assert (
            client.post("/v1/transactions", json=body, headers=ADMIN).json()["decision"] == "review"
        )
        tid = body["transaction_id"]
        verdict = {"verdict": "fraud", "note": "confirmed"}
        answer = client.post(f"/v1/reviews/{tid}", json=verdict, headers=REVIEWER)
        assert answer.status_code == 200, answer.text
        for _ in range(200):
            if len(receiver.events) >= 2 and len(asyncio.run(_dead(fresh_database))) >= 2:
                break
            time.sleep(0.05)
        assert receiver.bad_signatures == 0
        assert [(e["kind"], e["transaction_id"]) for e in receiver.events] == [
            ("decision", tid),
            ("verdict", tid),
        ]
        decision, closed = receiver.events
        assert (decision["decision"], decision["decided_by"]) == ("review", "rule:all-review")
        assert (closed["verdict"], closed["analyst"], closed["card_id"]) == (
            "fraud",
            "alice",
            "card_hook",
        )
        assert sorted(asyncio.run(_dead(fresh_database))) == [
            ("down", "decision", 2),
            ("down", "verdict", 2),
        ]
        metrics = client.get("/metrics").text
        assert (
            'riverguard_webhook_deliveries_total{endpoint="ok",outcome="delivered"} 2.0' in metrics
        )
        assert (
            'riverguard_webhook_deliveries_total{endpoint="down",outcome="dead_lettered"} 2.0'
            in metrics
        )


def test_a_case_closed_as_fraud_publishes_a_verdict_per_judged_transaction(
    fresh_database: str, api_redis_url: str, receiver: Receiver
) -> None:
    hooks = [{"name": "ok", "url": f"{receiver.url}/ok", "secret": SECRET}]
    settings = _hooked(fresh_database, api_redis_url, webhooks=hooks, relay_every_seconds=0.05)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        rule = {"id": "all-review", "expression": "amount > 0.0", "action": "review"}
        assert client.post("/v1/rules", json=rule, headers=ADMIN).status_code == 201
        tids = []
        for minutes in (90, 60):
            at = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()
            body = tx(card_id="card_case_hook", timestamp=at)
            assert client.post("/v1/transactions", json=body, headers=ADMIN).status_code == 200
            tids.append(body["transaction_id"])
        cases = client.get("/v1/cases", headers=REVIEWER).json()["cases"]
        (case,) = [c for c in cases if c["card_id"] == "card_case_hook"]
        closed = client.post(
            f"/v1/cases/{case['id']}/close", json={"outcome": "fraud"}, headers=REVIEWER
        )
        assert closed.status_code == 200, closed.text
        for _ in range(200):
            if len(receiver.events) >= 4:
                break
            time.sleep(0.05)
        assert receiver.bad_signatures == 0
        verdicts = [e for e in receiver.events if e["kind"] == "verdict"]
        assert sorted(e["transaction_id"] for e in verdicts) == sorted(tids)
        assert {(e["verdict"], e["analyst"]) for e in verdicts} == {("fraud", "alice")}
