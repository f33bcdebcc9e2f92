"""Model bundles in a real Valkey: a bounded number kept, ``latest`` fenced by epoch and log
position (a stale leader cannot move it backwards), and a stale learner that is refused steps
down while a confirmed one overrides a fence left by an earlier database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from app.bootstrap import build_pool
from app.bundles.redis_store import RedisBundleStore
from app.config import ScoringSettings, Settings
from app.core.learning import CheckpointPolicy, Learner
from app.core.metrics import Metrics
from app.core.ports import Fenced
from app.postgres.leadership import PgLeadership
from app.postgres.repository import PgRepository
from features.reference import MemoryFeatureStore


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisBundleStore]:
    client = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/11")
    await client.flushdb()
    try:
        yield RedisBundleStore(client)
    finally:
        await client.flushdb()
        await client.aclose()


async def _bundle_keys(store: RedisBundleStore) -> list[str]:
    keys = [k.decode() async for k in store.client.scan_iter(match="rg:{bundles}:*")]
    return sorted(k for k in keys if k.rsplit(":", 1)[1].isdigit())


async def test_only_the_newest_three_bundles_are_kept_and_the_newest_never_expires(
    store: RedisBundleStore,
) -> None:
    ids = [await store.publish(seq, f"b{seq}".encode(), epoch=1) for seq in range(10)]
    assert ids == list(range(1, 11))
    assert sorted(int(k.rsplit(":", 1)[1]) for k in await _bundle_keys(store)) == [8, 9, 10]
    assert await store.latest() == 10 and await store.fetch(10) == b"b9"
    assert await store.fetch(7) is None and await store.count() == 3
    assert await store.client.ttl("rg:{bundles}:10") == -1  # an idle learner's last bundle stays
    assert await store.published_at(10) is not None and await store.published_at(9) is None


async def test_a_stale_epoch_or_an_older_position_cannot_move_latest_backwards(
    store: RedisBundleStore,
) -> None:
    assert await store.publish(10, b"e2s10", epoch=2) == 1
    assert await store.publish(50, b"stale", epoch=1) == 0  # an old leader woken from a pause
    assert await store.publish(9, b"older", epoch=2) == 0  # its own older position
    assert await store.latest() == 1 and await store.count() == 1
    assert await store.publish(10, b"promoted", epoch=2) == 2  # same position: a promotion
    assert await store.publish(3, b"e3", epoch=3) == 3  # a newer leader always wins
    assert await store.publish(40, b"stale", epoch=2) == 0
    assert await store.fetch(await store.latest() or 0) == b"e3"
    assert await store.publish(1, b"reset", epoch=1, force=True) == 4  # a confirmed leader


def _learner(repo: PgRepository, store: RedisBundleStore, leadership: PgLeadership) -> Learner:
    settings = Settings(_env_file=None, scoring=ScoringSettings(challengers=()))  # type: ignore[call-arg]
    return Learner(
        repository=repo, pool=build_pool(settings, None), features=MemoryFeatureStore(),
        metrics=Metrics(), checkpoints=CheckpointPolicy(), leadership=leadership, bundles=store,
    )  # fmt: skip


async def test_a_refused_leader_asks_postgres_steps_down_when_stale_and_overrides_when_not(
    repo: PgRepository, fresh_database: str, store: RedisBundleStore
) -> None:
    stale, leader = PgLeadership(fresh_database), PgLeadership(fresh_database)
    old = _learner(repo, store, stale)
    try:
        assert await old.try_to_lead()  # epoch 1, publishes its (untrained) bundle
        assert stale._renewer is not None
        stale._renewer.cancel()  # paused: its lease goes stale, its session stays
        await store.publish(0, b"from an earlier database", epoch=99)  # a reset dev stack
        new = _learner(repo, store, leader)
        new.bundle_every_seconds = 0
        assert await new.leadership.acquire(poll=0.2) == 2  # type: ignore[union-attr]
        new.epoch = 2
        await new.publish_bundle()  # refused by the fence (99), confirmed by Postgres: wins
        assert await store.latest() == 3
        old._published = None
        with pytest.raises(Fenced):
            await old.publish_bundle()  # epoch 1 < 2 in Redis, and Postgres says epoch 2
        assert await store.latest() == 3
    finally:
        await stale.release()
        await leader.release()
