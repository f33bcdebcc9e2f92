"""Model bundles without servers: a follower swaps in the leader's models whole (identical
scores), and its readiness fails while it stays behind the newest bundle, then recovers."""

from __future__ import annotations

from typing import Any

from app.bootstrap import build_pool
from app.config import ScoringSettings, Settings
from app.core import bundles
from app.core.metrics import Metrics
from models import pool as model_pool

FS = "feature-set"
PROBE = {"amount": 120.0, "card_count_1d": 3.0, "hour_sin": 0.5}


class MemoryBundles:
    def __init__(self) -> None:
        self.blobs: dict[int, bytes] = {}
        self.newest: int | None = None
        self.blocked = False  # fetch answers nothing (a slow or cut-off Redis)

    async def publish(self, seq: int, blob: bytes) -> None:
        self.blobs[seq], self.newest = blob, seq

    async def latest(self) -> int | None:
        return self.newest

    async def fetch(self, seq: int) -> bytes | None:
        return None if self.blocked else self.blobs.get(seq)


def _pool() -> model_pool.ModelPool:
    settings = Settings(_env_file=None, scoring=ScoringSettings())  # type: ignore[call-arg]
    return build_pool(settings, None)


def _trained(labels: int) -> model_pool.ModelPool:
    pool = _pool()
    for i in range(labels):
        pool.learn({**PROBE, "amount": float(i % 50)}, i % 7 == 0, {})
    return pool


async def test_a_follower_scores_exactly_like_the_leader_and_flags_a_stuck_bundle() -> None:
    store, now = MemoryBundles(), [0.0]
    swapped: list[tuple[int, Any]] = []
    follower = bundles.Follower(
        store=store, make_pool=lambda champion: build_pool(
            Settings(_env_file=None, scoring=ScoringSettings(champion=champion)), None  # type: ignore[call-arg]
        ),
        feature_set=FS, metrics=Metrics(), swap=lambda seq, p: swapped.append((seq, p)),
        leading=lambda: False, max_lag_seconds=60, clock=lambda: now[0],
    )  # fmt: skip
    leader = _trained(300)
    await store.publish(5, bundles.pack(leader, FS, 5))
    assert await follower.poll() and swapped[-1][0] == 5
    mine = swapped[-1][1]
    assert [s.score for s in mine.score(PROBE)] == [s.score for s in leader.score(PROBE)]
    assert [s.version for s in mine.score(PROBE)] == [s.version for s in leader.score(PROBE)]

    store.blocked = True
    await store.publish(9, bundles.pack(_trained(400), FS, 9))
    assert not await follower.poll()
    assert await follower.problem() is None  # behind, but within the bound
    now[0] = 61.0
    assert not await follower.poll()
    problem = await follower.problem()
    assert problem is not None and "behind" in problem
    assert follower.metrics.bundle_lag._value.get() == 61.0

    store.blocked = False
    assert await follower.poll() and swapped[-1][0] == 9
    assert await follower.problem() is None
    assert follower.metrics.bundle_lag._value.get() == 0.0
