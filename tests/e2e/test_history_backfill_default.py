"""`riverguard history backfill` with the default lineup: the booster has fitted at the end.

The default champion, ``stack_live``, stacks a LightGBM booster fitted on a background thread
on a window of learned labels (first after 2,000 labels, then daily in label time) and
published once the fit is done. A 60-day simulated history of about 2,100 labels goes into a
split deployment (a learner process and a scorer) with the default lineup: the booster's first
fit starts at label 2,000, and would be published by a label 200 labels later, which the
history does not have. Then: every transaction and label stored once, every label learned by
every model, and the booster fitted — on the learner and in the bundle the scorer loaded (the
same state on both), on a fit started within its refit period (a day of label time) of the
history's last label, its window holding exactly the frauds of the history's last 28 days; and
the first live transaction's champion score is combined from the fitted booster's score (the
member scores stored with it name the booster; one that abstains is left out).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from features.schema import decode_label
from models import zoo
from simulator.records import Record
from tests.backfill_history import backfill, counts, finished, history
from tests.service_process import KEY, ServiceProcess, serve

pytestmark = pytest.mark.slow
FAR = datetime(2100, 1, 1, tzinfo=UTC)
BOOSTER = zoo.ZOO["booster"].params  # the stack's booster: the zoo's, published when done
PUBLISH_AFTER = zoo.ZOO["stack_live"].params["publish_after"]  # labels, unless settled before
HOUR, DAY = 3600.0, 86_400.0


def _models(service: ServiceProcess) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{service.url}/v1/models", headers={"X-API-Key": KEY}, timeout=30)
    answer.raise_for_status()
    return {m["name"]: m for m in answer.json()["models"]}


def _labels(records: list[Record]) -> list[tuple[float, bool]]:
    """(label time, is fraud) of every label, in stream order."""
    decoded = [decode_label(r.payload(), now=FAR) for r in records if r.kind == "label"]
    return [(label.labeled_at.timestamp(), label.is_fraud) for label in decoded]


def test_backfill_with_the_default_lineup_ends_with_the_booster_fitted_on_the_scorer(
    redis_url: str, fresh_database: str, tmp_path: Path
) -> None:
    path, records, live = history(tmp_path, seed=7, cards=27, fraud_rate=0.03)
    labels = _labels(records)
    n_labels, n_tx = len(labels), len(records) - len(labels)
    assert BOOSTER["first_fit_after"] < n_labels < BOOSTER["first_fit_after"] + PUBLISH_AFTER
    db = redis_url.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(db).flushdb()
    env = {
        "RIVERGUARD_REDIS_URL": db, "RIVERGUARD_DATABASE_URL": fresh_database,
        "RIVERGUARD_SCORING__BUNDLE_EVERY_SECONDS": "1",
    }  # fmt: skip  # the default lineup: no champion, challengers or promotion set
    learner = serve({**env, "RIVERGUARD_ROLE": "learner"}).start(tmp_path / "learner.log")
    scorer = serve({**env, "RIVERGUARD_ROLE": "scorer"}).start(tmp_path / "scorer.log")
    try:
        run = backfill(path, scorer, learner)
        output = finished(run, 900)
        assert run.returncode == 0, output

        stored, distinct, log, once = asyncio.run(counts(fresh_database))
        assert stored == distinct == n_tx
        assert log == list(range(1, n_labels + 1)), "the learning log has a gap or a double"
        assert once == n_labels
        on_learner, on_scorer = _models(learner), _models(scorer)
        assert {n: m["learned"] for n, m in on_scorer.items()} == dict.fromkeys(
            ("stack_live", "logreg", "hat"), n_labels
        )
        assert on_scorer["stack_live"]["role"] == "champion"
        assert {n: m["learned"] for n, m in on_learner.items()} == {
            n: m["learned"] for n, m in on_scorer.items()
        }

        fitted = on_learner["stack_live"]["booster"]
        assert fitted["fitted"] and fitted["fits"] >= 1 and fitted["fit_errors"] == 0
        assert not fitted["fitting"], "the backfill ended before the booster's fit was published"
        assert on_scorer["stack_live"]["booster"] == fitted  # the bundle holds the last fit
        end = labels[-1][0]
        before_its_last_day = sum(t <= end - BOOSTER["refit_hours"] * HOUR for t, _ in labels)
        assert fitted["fitted_labels"] > before_its_last_day
        recent = [fraud for t, fraud in labels if t >= end - BOOSTER["window_days"] * DAY]
        assert fitted["window_frauds"] == sum(recent)
        assert fitted["window_frauds"] < fitted["window_rows"] <= len(recent)
        assert 0 < fitted["fitted_rows"] <= fitted["window_rows"]

        first = live[0]
        answer = httpx.post(f"{scorer.url}/v1/transactions", content=first.payload(),
                            headers={"X-API-Key": KEY}, timeout=30)  # fmt: skip
        assert answer.status_code == 200 and answer.json()["model"]["name"] == "stack_live"
        record = httpx.get(f"{scorer.url}/v1/transactions/{first.transaction_id}",
                           headers={"X-API-Key": KEY}, timeout=30).json()  # fmt: skip
        champion = next(s for s in record["scores"] if s["name"] == "stack_live")
        assert set(champion["parts"]) == {"arf_bounded", "logreg", "booster"}
        assert 0.0 < champion["parts"]["booster"] < 1.0
    finally:
        scorer.stop()
        learner.stop()
        redis.Redis.from_url(db).flushdb()
