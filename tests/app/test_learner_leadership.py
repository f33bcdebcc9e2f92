"""One learner at a time: an advisory lock plus a fenced epoch, on a real PostgreSQL.

In-process: a dead leader's session releases the lock; a paused one (it stops renewing its
lease) is evicted; a stale epoch writes nothing; a label committed late is learned once; the
learning log stays gapless.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from app.bootstrap import build_pool
from app.config import ScoringSettings, Settings
from app.core.learning import CheckpointPolicy, Learner
from app.core.metrics import Metrics
from app.core.ports import Fenced, LabelEntry
from app.core.scoring import Scorer, ScoringService, group_writer
from app.postgres.leadership import PgLeadership
from app.postgres.repository import PgRepository
from features import definitions
from features.reference import MemoryFeatureStore
from features.schema import Label, Transaction

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _tx(i: int) -> Transaction:
    return Transaction(
        transaction_id=f"t{i}", card_id=f"c{i % 3}", merchant_id="m1", amount=Decimal("20.00"),
        currency="EUR", timestamp=NOW - timedelta(hours=50 - i), channel="ecom", country="FR",
    )  # fmt: skip


def _label(i: int, fraud: bool = False) -> Label:
    return Label(transaction_id=f"t{i}", is_fraud=fraud, labeled_at=NOW, source="chargeback")


async def _scored(repo: PgRepository, n: int) -> None:
    settings = Settings(_env_file=None, scoring=ScoringSettings(challengers=()))  # type: ignore[call-arg]
    metrics = Metrics()
    service = ScoringService(
        MemoryFeatureStore(),
        Scorer(build_pool(settings, None), metrics, definitions.FEATURE_SET_ID),
        repo, metrics, group_writer(repo, flush_ms=1, flush_max=64), clock=lambda: NOW,
    )  # fmt: skip
    await service.score([_tx(i) for i in range(n)], "rest")


async def _log(repo: PgRepository) -> list[asyncpg.Record]:
    return await repo.pool.fetch("SELECT seq, label_seq, epoch FROM learn_log ORDER BY seq")


async def test_a_dead_leaders_lock_goes_and_its_epoch_writes_nothing(
    repo: PgRepository, fresh_database: str
) -> None:
    first, second = PgLeadership(fresh_database), PgLeadership(fresh_database)
    try:
        assert await first.try_acquire() and first.epoch == 1
        assert not await second.try_acquire()
        await _scored(repo, 3)
        seqs = await repo.receive_labels([_label(0), _label(1), _label(2)])
        entry = LabelEntry("t0", False, NOW, "chargeback", "learned", True)
        assert await repo.settle_labels([(seqs[0], entry)], first.epoch) == [1]
        # the leader's process dies: its session ends, the lock with it
        await repo.pool.execute("SELECT pg_terminate_backend($1)", first._conn.get_server_pid())
        assert await asyncio.wait_for(second.acquire(poll=0.1), 10) == 2
        stale = LabelEntry("t1", False, NOW, "chargeback", "learned", True)
        with pytest.raises(Fenced):
            await repo.settle_labels([(seqs[1], stale)], first.epoch)
        fresh = LabelEntry("t2", False, NOW, "chargeback", "learned", True)
        assert await repo.settle_labels([(seqs[2], fresh)], second.epoch) == [2]
        assert [(r["seq"], r["epoch"]) for r in await _log(repo)] == [(1, 1), (2, 2)]
        statuses = await repo.label_statuses(seqs)
        assert statuses == {seqs[0]: "learned", seqs[1]: "received", seqs[2]: "learned"}
    finally:
        await first.release()
        await second.release()


async def test_a_paused_leader_is_evicted_after_its_lease(
    repo: PgRepository, fresh_database: str
) -> None:
    paused = PgLeadership(fresh_database, lease_seconds=1.0)
    standby = PgLeadership(fresh_database, lease_seconds=1.0)
    try:
        assert await paused.try_acquire()
        assert paused._renewer is not None
        paused._renewer.cancel()  # what SIGSTOP does to it: no renewal, the session stays up
        assert not await standby.try_acquire()  # the lease is still fresh
        assert await asyncio.wait_for(standby.acquire(poll=0.2), 15) == paused.epoch + 1
        with pytest.raises(Fenced):
            await repo.save_snapshot("m", "1", 0, "fs", {}, b"x", epoch=paused.epoch)
        assert await repo.pool.fetchval("SELECT count(*) FROM model_snapshots") == 0
    finally:
        await paused.release()
        await standby.release()


async def test_a_label_committed_late_is_learned_exactly_once(
    repo: PgRepository, fresh_database: str
) -> None:
    await _scored(repo, 4)
    settings = Settings(_env_file=None, scoring=ScoringSettings(challengers=()))  # type: ignore[call-arg]
    learner = Learner(
        repository=repo, pool=build_pool(settings, None), features=MemoryFeatureStore(),
        metrics=Metrics(), checkpoints=CheckpointPolicy(every_labels=10_000),
        leadership=PgLeadership(fresh_database), sweep_seconds=0.1,
    )  # fmt: skip
    assert await learner.try_to_lead()
    task = asyncio.create_task(learner.run())
    held = await asyncpg.connect(fresh_database)
    try:
        late = held.transaction()
        await late.start()  # takes the lower seq, commits last
        await held.execute(
            "INSERT INTO labels (transaction_id, is_fraud, labeled_at, source, status)"
            " VALUES ('t0', true, $1, 'chargeback', 'received')",
            NOW,
        )
        assert await learner.submit([_label(1), _label(2)]) == ["learned", "learned"]
        await late.commit()
        for _ in range(100):  # the sweep claims it
            if len(await _log(repo)) == 3:
                break
            await asyncio.sleep(0.05)
        log = await _log(repo)
        assert [r["seq"] for r in log] == [1, 2, 3]  # gapless
        assert len({r["label_seq"] for r in log}) == 3  # each label once
        assert learner.pool.members[learner.pool.champion].learned == 3
    finally:
        await held.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert learner.leadership is not None
        await learner.leadership.release()
