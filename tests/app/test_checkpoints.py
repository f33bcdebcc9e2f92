"""Checkpoints: a killed service restarts with exactly the models it had (no label lost)."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.conftest import LABELER, SCORER, label, settings_for, tx


def _probes() -> list[dict[str, float]]:
    rng = random.Random(5)
    return [
        {
            "amount": rng.uniform(1, 900),
            "card_count_1d": rng.randint(0, 9),
            "card_amount_to_mean_30d": rng.uniform(0, 5),
        }
        for _ in range(50)
    ]


def _predictions(client: TestClient) -> list[list[float]]:
    pool = client.app.state.riverguard.learner.pool  # type: ignore[attr-defined]
    return [[s.score for s in pool.score(p)] for p in _probes()]


def _feed(client: TestClient, first: int, count: int, labels: int) -> None:
    rng = random.Random(first)
    bodies = [
        tx(card_id=f"card_{i % 9}", merchant_id=f"m_{i % 5}", amount=round(rng.uniform(2, 800), 2))
        for i in range(first, first + count)
    ]
    for body in bodies:
        assert client.post("/v1/transactions", json=body, headers=SCORER).status_code == 200
    for body in bodies[:labels]:
        fraud = body["amount"] > 600
        assert (
            client.post(
                "/v1/labels", json=label(body["transaction_id"], fraud), headers=LABELER
            ).status_code
            == 202
        )


def test_kill_after_k_labels_then_restart_predicts_like_an_uninterrupted_run(
    fresh_database: str, api_redis_url: str, database_url: str
) -> None:
    settings = settings_for(
        fresh_database,
        api_redis_url,
        scoring={"checkpoint_every_labels": 50, "checkpoint_every_seconds": 3600},
    )
    with TestClient(create_app(settings)) as first:
        _feed(first, 0, 300, 230)
        uninterrupted = _predictions(first)

        async def killed() -> None:  # a SIGKILL writes no final checkpoint
            return None

        first.app.state.riverguard.learner.checkpoint = killed  # type: ignore[attr-defined]

    snapshots = _fetch(fresh_database, "SELECT model_name, learn_seq FROM model_snapshots")
    latest: dict[str, int] = {}
    for row in snapshots:
        latest[row["model_name"]] = max(latest.get(row["model_name"], 0), row["learn_seq"])
    scoring = settings.scoring
    assert latest == {name: 200 for name in [scoring.champion, *scoring.challengers]}
    assert _fetch(fresh_database, "SELECT count(*) AS n FROM learn_log")[0]["n"] == 230

    with TestClient(create_app(settings)) as second:
        assert _predictions(second) == uninterrupted
        learned = {
            m["name"]: m["learned"]
            for m in second.get("/v1/models", headers=SCORER).json()["models"]
        }
        assert set(learned.values()) == {230}


def test_a_snapshot_that_does_not_match_is_refused_and_the_log_relearned(
    fresh_database: str, api_redis_url: str
) -> None:
    settings = settings_for(fresh_database, api_redis_url, scoring={"checkpoint_every_labels": 40})
    with TestClient(create_app(settings)) as first:
        _feed(first, 1000, 120, 100)
        expected = _predictions(first)
    _corrupt_feature_sets(fresh_database)
    with TestClient(create_app(settings)) as second:
        assert _predictions(second) == expected


def _corrupt_feature_sets(url: str) -> None:
    import asyncio

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            for row in await conn.fetch("SELECT id, blob FROM model_snapshots"):
                head, sep, body = bytes(row["blob"]).partition(b"\n--\n")
                forged = head.replace(b'"feature_set": "', b'"feature_set": "other-') + sep + body
                await conn.execute(
                    "UPDATE model_snapshots SET blob = $2 WHERE id = $1", row["id"], forged
                )
        finally:
            await conn.close()

    asyncio.run(run())


def _fetch(url: str, sql: str) -> list[Any]:
    import asyncio

    async def run() -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(run())
