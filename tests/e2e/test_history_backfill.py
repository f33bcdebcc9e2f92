"""`riverguard history backfill` into a split deployment (a learner process and a scorer).

A 60-day simulated history goes in; the scorer and the backfill are killed with SIGKILL part
way and the backfill is run again. Then: every transaction and label stored once, the
learning log gapless with each label once, the scorer's models hold every label, and the first
live transactions score exactly as an offline replay of the same history (the reference
features, the same models learning the stored float32 snapshots in stream order).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis

from features import config as feature_config
from features import reference
from features.schema import Transaction, decode_label, decode_transaction
from models import pool as model_pool
from models import zoo
from simulator.records import Record
from tests.backfill_history import backfill, counts, done, finished, history
from tests.service_process import KEY, serve

pytestmark = pytest.mark.slow
CHAMPION, CHALLENGER = "logreg", "hat"  # no live booster: the replay can be exact
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def _offline(records: list[Record], live: list[Record]) -> list[dict[str, float]]:
    """Every model's score for each live transaction after an offline replay of ``records``:
    the reference features in stream order, labels applied and learned where they come."""
    pool = model_pool.ModelPool([zoo.ZOO[CHAMPION], zoo.ZOO[CHALLENGER]], champion=CHAMPION)
    features = reference.ReferenceFeatures(feature_config.FeatureConfig())
    seen: dict[str, tuple[Transaction, dict[str, float]]] = {}
    for record in records:
        if record.kind == "transaction":
            tx = decode_transaction(record.payload(), now=FAR)
            result = features.transaction(tx)
            assert result.status != "late"
            # the service stores the snapshot as real[]: the learner learns float32 values
            seen[tx.transaction_id] = (
                tx,
                {k: float(np.float32(v)) for k, v in result.features.items()},
            )
        else:
            label = decode_label(record.payload(), now=FAR)
            tx, stored = seen[label.transaction_id]
            features.label(label, tx)
            pool.learn(stored, label.is_fraud, {}, at=label.labeled_at.timestamp())
    out = []
    for record in live:
        result = features.transaction(decode_transaction(record.payload(), now=FAR))
        out.append({s.name: s.score for s in pool.score(result.features)})
    return out


def test_backfill_into_a_split_deployment_survives_kills_and_starts_warm(
    redis_url: str, fresh_database: str, tmp_path: Path
) -> None:
    path, records, live = history(tmp_path, seed=5, cards=20)
    n_tx = sum(r.kind == "transaction" for r in records)
    n_labels = len(records) - n_tx
    db = redis_url.rsplit("/", 1)[0] + "/11"
    redis.Redis.from_url(db).flushdb()
    env = {
        "RIVERGUARD_REDIS_URL": db, "RIVERGUARD_DATABASE_URL": fresh_database,
        "RIVERGUARD_SCORING__BUNDLE_EVERY_SECONDS": "1",
        "RIVERGUARD_SCORING__CHAMPION": CHAMPION,
        "RIVERGUARD_SCORING__CHALLENGERS": json.dumps([CHALLENGER]),
        "RIVERGUARD_SCORING__AUTO_PROMOTE": "false",
    }  # fmt: skip
    learner = serve({**env, "RIVERGUARD_ROLE": "learner"}).start(tmp_path / "learner.log")
    scorer = serve({**env, "RIVERGUARD_ROLE": "scorer"}).start(tmp_path / "scorer.log")
    try:
        first = backfill(path, scorer, learner)
        deadline = time.monotonic() + 300
        while done(path) < len(records) // 3:
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "the backfill made no progress"
            time.sleep(0.2)
        os.kill(scorer.pid, signal.SIGKILL)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        scorer.stop()
        scorer = serve({**env, "RIVERGUARD_ROLE": "scorer"}).start(tmp_path / "scorer2.log")

        second = backfill(path, scorer, learner)
        output = finished(second, 600)
        assert second.returncode == 0, output
        assert "resuming after" in output

        stored, distinct, log, once = asyncio.run(counts(fresh_database))
        assert stored == distinct == n_tx
        assert log == list(range(1, n_labels + 1)), "the learning log has a gap or a double"
        assert once == n_labels
        models = httpx.get(f"{scorer.url}/v1/models", headers={"X-API-Key": KEY}, timeout=30)
        assert {m["name"]: m["learned"] for m in models.json()["models"]} == {
            CHAMPION: n_labels,
            CHALLENGER: n_labels,
        }

        expected = _offline(records, live)
        for record, offline in zip(live, expected, strict=True):
            answer = httpx.post(f"{scorer.url}/v1/transactions", content=record.payload(),
                                headers={"X-API-Key": KEY}, timeout=30).json()  # fmt: skip
            given = {answer["model"]["name"]: answer["score"]}
            given |= {s["name"]: s["score"] for s in answer["shadow"]}
            assert given == pytest.approx(offline, abs=1e-9)
    finally:
        scorer.stop()
        learner.stop()
        redis.Redis.from_url(db).flushdb()
