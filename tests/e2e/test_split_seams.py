"""The split layout users run — one `riverguard learner`, scorers with RIVERGUARD_ROLE=scorer —
over REST on real processes: a promotion made through a scorer is the champion everywhere and
audited once, and Redis keeps a bounded number of model bundles under label traffic."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.e2e.test_learner_failover import HEADERS, _label, _metric, _post, _tx
from tests.service_process import ServiceProcess, serve

Pair = tuple[ServiceProcess, ServiceProcess]  # (learner, scorer)


@pytest.fixture
def split(redis_url: str, fresh_database: str, tmp_path: Path) -> Iterator[tuple[Pair, str]]:
    """A learner and a scorer on one database and their own Redis database (flushed)."""
    db10 = redis_url.rsplit("/", 1)[0] + "/10"
    redis.Redis.from_url(db10).flushdb()
    env = {
        "RIVERGUARD_REDIS_URL": db10, "RIVERGUARD_DATABASE_URL": fresh_database,
        "RIVERGUARD_SCORING__BUNDLE_EVERY_SECONDS": "1", "RIVERGUARD_SCORING__LEASE_SECONDS": "3",
        "RIVERGUARD_SCORING__CHALLENGERS": '["logreg"]',
        "RIVERGUARD_DECISIONS__REVIEW_BUDGET": "0.05",
        "RIVERGUARD_DECISIONS__BUDGET_EVERY_SECONDS": "1",
    }  # fmt: skip
    learner = serve({**env, "RIVERGUARD_ROLE": "learner"}).start(tmp_path / "learner.log")
    scorer = serve({**env, "RIVERGUARD_ROLE": "scorer"}).start(tmp_path / "scorer.log")
    try:
        yield (learner, scorer), db10
    finally:
        scorer.stop()
        learner.stop()
        redis.Redis.from_url(db10).flushdb()


def _get(service: ServiceProcess, path: str) -> Any:
    return httpx.get(f"{service.url}{path}", headers=HEADERS, timeout=30).json()


def _champion(service: ServiceProcess) -> str:
    roles = {m["name"]: m["role"] for m in _get(service, "/v1/models")["models"]}
    return next(name for name, role in roles.items() if role == "champion")


def _poll(what: Callable[[], bool], seconds: float, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.2)


def _cutoffs_champion(db: str) -> str | None:
    blob = redis.Redis.from_url(db).get("rg:{bundles}:cutoffs")
    return None if blob is None else str(json.loads(blob)["champion"])


_COUNT_BUNDLES = """
local n = 0
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  if string.match(key, ':%d+$') then n = n + 1 end
end
return n
"""


def _bundles_in_redis(db: str) -> int:
    # one script: an atomic snapshot (a SCAN running while the learner publishes can return
    # both a bundle deleted by that publication and the one it added)
    return int(redis.Redis.from_url(db).eval(_COUNT_BUNDLES, 0, "rg:{bundles}:*"))


def _traffic(scorer: ServiceProcess, start: int, count: int) -> None:
    for i in range(start, start + count):
        assert _post(scorer, "/v1/transactions", _tx(i)).status_code == 200
        assert _post(scorer, "/v1/labels", _label(i)).json()["status"] == "accepted"


def test_a_promotion_through_a_scorer_holds_everywhere_and_is_audited_once(
    split: tuple[Pair, str],
) -> None:
    (learner, scorer), db = split
    _traffic(scorer, 0, 10)
    _poll(lambda: _metric(scorer, "riverguard_bundle_loaded_seq") >= 10, 30, "no bundle loaded")
    before = _champion(scorer)
    assert _champion(learner) == before
    promoted = _post(scorer, "/v1/models/logreg/promote", {"reason": "better AP"})
    assert promoted.status_code == 202, promoted.text  # recorded; the learner applies it
    assert promoted.json()["to_model"] == "logreg"

    every = (learner, scorer)
    _poll(lambda: all(_champion(s) == "logreg" for s in every), 20, "not the champion everywhere")
    # it holds: later labels move the log, the learner publishes, the scorer loads again
    _traffic(scorer, 10, 5)
    _poll(lambda: _metric(scorer, "riverguard_bundle_loaded_seq") >= 15, 30, "no new bundle")
    assert [_champion(s) for s in every] == ["logreg", "logreg"]
    _poll(lambda: _cutoffs_champion(db) == "logreg", 20, "budget cutoffs kept the old champion")
    for service in every:
        audit = _get(service, "/v1/models/promotions")["promotions"]
        assert [(a["from_model"], a["to_model"]) for a in audit] == [(before, "logreg")]
        assert audit[0]["requested_by"] == "e2e"

    # asked of the learner, which leads: applied there and then, with its audit record
    back = _post(learner, f"/v1/models/{before}/promote", {"reason": "back"})
    assert back.status_code == 200 and back.json()["to_model"] == before
    _poll(lambda: _champion(scorer) == before, 20, "the scorer kept the old champion")
    assert len(_get(scorer, "/v1/models/promotions")["promotions"]) == 2


@pytest.mark.slow
def test_redis_holds_at_most_three_bundles_under_a_minute_of_label_traffic(
    split: tuple[Pair, str],
) -> None:
    (learner, scorer), db = split
    most, i, end = 0, 0, time.monotonic() + 60
    while time.monotonic() < end and i < 5_000:  # bounded: ~a label per 20 ms at most
        _traffic(scorer, i, 5)
        i += 5
        most = max(most, _bundles_in_redis(db))
    _poll(lambda: _metric(scorer, "riverguard_bundle_loaded_seq") >= i, 30, "scorer behind")
    assert 0 < most <= 3 and _bundles_in_redis(db) <= 3
    assert _metric(learner, "riverguard_bundle_published_seq") == i
