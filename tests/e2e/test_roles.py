"""A scorer and a learner: the scorer never learns, the learner does, and the scorer scores
with the learner's bundles — it does not take over when the learner dies."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis

from tests.e2e.test_learner_failover import _label, _log, _metric, _post, _tx, _wait_learned
from tests.service_process import serve


def test_a_scorer_follows_the_learner_and_never_learns(
    redis_url: str, fresh_database: str, tmp_path: Path
) -> None:
    db9 = redis_url.rsplit("/", 1)[0] + "/9"
    redis.Redis.from_url(db9).flushdb()
    env = {
        "RIVERGUARD_REDIS_URL": db9, "RIVERGUARD_DATABASE_URL": fresh_database,
        "RIVERGUARD_SCORING__BUNDLE_EVERY_SECONDS": "1", "RIVERGUARD_SCORING__LEASE_SECONDS": "2",
    }  # fmt: skip
    scorer = serve({**env, "RIVERGUARD_ROLE": "scorer"}).start(tmp_path / "scorer.log")
    learner = serve({**env, "RIVERGUARD_ROLE": "learner"}).start(tmp_path / "learner.log")
    try:
        assert _metric(scorer, "riverguard_learner_leading") == 0
        assert _metric(learner, "riverguard_learner_leading") == 1
        for i in range(12):
            assert _post(scorer, "/v1/transactions", _tx(i)).status_code == 200
        statuses = {_post(scorer, "/v1/labels", _label(i)).json()["status"] for i in range(12)}
        assert statuses == {"accepted"}
        assert len(_wait_learned(fresh_database, 12)) == 12
        deadline = time.monotonic() + 30
        while _metric(scorer, "riverguard_bundle_loaded_seq") < 12:
            assert time.monotonic() < deadline, "the scorer never loaded the learner's bundle"
            time.sleep(0.2)

        learner.kill()
        for i in range(12, 20):
            assert _post(scorer, "/v1/transactions", _tx(i)).status_code == 200
            assert _post(scorer, "/v1/labels", _label(i)).json()["status"] == "accepted"
        time.sleep(3 * 2)  # well past the lease: a candidate would have taken over by now
        assert len(asyncio.run(_log(fresh_database))) == 12, "the scorer learned"
        assert _metric(scorer, "riverguard_learner_leading") == 0
    finally:
        scorer.stop()
        learner.stop()
        redis.Redis.from_url(db9).flushdb()
