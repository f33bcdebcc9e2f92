"""Pruning never loses a label: `riverguard db prune`, then labels, then kill -9 the learner.

Labels arrive late, so the newest learning-log rows are often those of old transactions; the
prune deletes them with their day. The next labels must still get numbers above every number
used before (the log's head only moves forward): else they sit below the leader's checkpoint
and a restart from it never learns them, though each one was acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import redis

from tests.service_process import KEY, RIVERGUARD, ServiceProcess, serve

HEADERS = {"X-API-Key": KEY}
NOW = datetime.now(UTC)
RECENT, OLD = "recent", "old"  # today's transactions; ten days old ones (pruned at 3 days)


def _tx(day: str, i: int) -> dict[str, object]:
    at = NOW - (timedelta(days=10) if day == OLD else timedelta(hours=2))
    return {
        "transaction_id": f"pr-{day}-{i}", "card_id": f"card_{day}_{i % 4}",
        "merchant_id": f"m_{day}", "amount": 10 + i, "currency": "EUR", "channel": "ecom",
        "country": "FR", "timestamp": (at + timedelta(minutes=i)).isoformat(),
    }  # fmt: skip


def _label(day: str, i: int) -> dict[str, object]:
    return {
        "transaction_id": f"pr-{day}-{i}", "is_fraud": i % 3 == 0,
        "labeled_at": NOW.isoformat(), "source": "chargeback",
    }  # fmt: skip


def _post(service: ServiceProcess, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{service.url}{path}", json=body, headers=HEADERS, timeout=30)


def _fetch(database_url: str, sql: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def _log(database_url: str) -> list[tuple[int, int]]:
    rows = _fetch(database_url, "SELECT seq, label_seq FROM learn_log ORDER BY seq")
    return [(r["seq"], r["label_seq"]) for r in rows]


def _learned(service: ServiceProcess) -> dict[str, int]:
    models = httpx.get(f"{service.url}/v1/models", headers=HEADERS, timeout=10).json()["models"]
    return {m["name"]: m["learned"] for m in models}


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_prune_then_labels_then_kill_loses_no_label(
    redis_url: str, fresh_database: str, tmp_path: Path
) -> None:
    db8 = redis_url.rsplit("/", 1)[0] + "/8"
    redis.Redis.from_url(db8).flushdb()
    env = {
        "RIVERGUARD_REDIS_URL": db8, "RIVERGUARD_DATABASE_URL": fresh_database,
        "RIVERGUARD_SCORING__CHALLENGERS": '["hat"]',
        # one checkpoint after the first 10 labels, none after (a SIGKILL writes no last one)
        "RIVERGUARD_SCORING__CHECKPOINT_EVERY_LABELS": "10",
        "RIVERGUARD_SCORING__CHECKPOINT_EVERY_SECONDS": "3600",
    }  # fmt: skip
    first = serve(env).start(tmp_path / "first.log")
    second: ServiceProcess | None = None
    try:
        for day in (RECENT, OLD):
            for i in range(10):
                assert _post(first, "/v1/transactions", _tx(day, i)).status_code == 200
        # recent labels first, then the late ones of old transactions: the newest log rows
        answers = [_post(first, "/v1/labels", _label(RECENT, i)) for i in range(5)]
        answers += [_post(first, "/v1/labels", _label(OLD, i)) for i in range(5)]
        assert [a.json()["status"] for a in answers] == ["learned"] * 10
        checkpoint = "SELECT max(learn_seq) AS seq FROM model_snapshots"
        _wait(lambda: _fetch(fresh_database, checkpoint)[0]["seq"] == 10, "no checkpoint at 10")
        head = 10

        pruned = subprocess.run(
            [str(RIVERGUARD), "db", "prune"], capture_output=True, text=True, timeout=120,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("RIVERGUARD_")},
                 "RIVERGUARD_DATABASE_URL": fresh_database,
                 "RIVERGUARD_PERSISTENCE__RETENTION_DAYS": "3"},
        )  # fmt: skip
        assert pruned.returncode == 0, pruned.stderr
        assert "scored_transactions_p" in pruned.stderr  # the old day went
        assert [seq for seq, _ in _log(fresh_database)] == [1, 2, 3, 4, 5]

        answers = [_post(first, "/v1/labels", _label(RECENT, i)) for i in range(5, 10)]
        assert [a.json()["status"] for a in answers] == ["learned"] * 5
        log = _log(fresh_database)
        assert [seq for seq, _ in log] == [1, 2, 3, 4, 5, *range(head + 1, head + 6)]
        first.kill()  # SIGKILL: no final checkpoint; the restart restores the one at 10

        second = serve(env).start(tmp_path / "second.log")
        # every acknowledged label is in the models: 10 in the checkpoint, 5 re-learned
        assert set(_learned(second).values()) == {15}
        answers = [_post(second, "/v1/labels", _label(RECENT, i)) for i in (0, 9)]
        assert [a.json()["status"] for a in answers] == ["duplicate", "duplicate"]
        answers = [_post(second, "/v1/labels", {**_label(RECENT, 1), "is_fraud": True})]
        assert [a.json()["status"] for a in answers] == ["relabeled"]
        log = _log(fresh_database)
        after = [seq for seq, _ in log if seq > 5]
        assert after == list(range(head + 1, head + 7)), "the log has a gap or reused a number"
        assert len({label_seq for _, label_seq in log}) == len(log), "a label was learned twice"
        assert set(_learned(second).values()) == {16}
    finally:
        for service in (first, second):
            if service is not None:
                service.stop()
        redis.Redis.from_url(db8).flushdb()
