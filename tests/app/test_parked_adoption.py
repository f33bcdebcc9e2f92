"""Parked labels on a real PostgreSQL: adoption settles them by label order and value, and a
transaction whose record cannot be read stops neither the sweep nor its housekeeping.

The unreadable record is the state the README's archive steps create: a day partition
detached (its ids stay in ``transaction_ids``) while a label for one of its transactions
arrives through another process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import redis.asyncio as redis_async

from app.bootstrap import build_pool
from app.bundles.redis_store import RedisBundleStore
from app.config import ScoringSettings, Settings
from app.core.learning import CheckpointPolicy, Learner
from app.core.metrics import Metrics
from app.core.ports import BundleStore
from app.core.scoring import Scorer, ScoringService, group_writer
from app.postgres.repository import PgRepository
from features import definitions
from features.reference import MemoryFeatureStore
from features.schema import Label, Transaction
from tests.app.fakes import MemoryRecords

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
T1, T2, T3 = NOW - timedelta(hours=3), NOW - timedelta(hours=2), NOW - timedelta(hours=1)


def _tx(name: str, at: datetime) -> Transaction:
    return Transaction(
        transaction_id=name, card_id=f"c-{name}", merchant_id="m1", amount=Decimal("20.00"),
        currency="EUR", timestamp=at, channel="ecom", country="FR",
    )  # fmt: skip


def _label(name: str, fraud: bool, at: datetime = T2) -> Label:
    return Label(transaction_id=name, is_fraud=fraud, labeled_at=at, source="chargeback")


def _settings() -> Settings:
    return Settings(_env_file=None, scoring=ScoringSettings(challengers=()))  # type: ignore[call-arg]


async def _score(repo: PgRepository, txs: list[Transaction]) -> None:
    """Store scored records, as a scorer does, without telling the learner they arrived."""
    metrics = Metrics()
    service = ScoringService(
        MemoryFeatureStore(),
        Scorer(build_pool(_settings(), None), metrics, definitions.FEATURE_SET_ID),
        repo, metrics, group_writer(repo, flush_ms=1, flush_max=64), clock=lambda: NOW,
    )  # fmt: skip
    await service.score(txs, "rest")


def _learner(repo: object, sweep: float, bundles: BundleStore | None = None) -> Learner:
    return Learner(
        repository=repo, pool=build_pool(_settings(), None),  # type: ignore[arg-type]
        features=MemoryFeatureStore(), metrics=Metrics(),
        checkpoints=CheckpointPolicy(every_labels=1, feature_set=definitions.FEATURE_SET_ID),
        sweep_seconds=sweep, bundles=bundles, bundle_every_seconds=0.0,
    )  # fmt: skip


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


@pytest.fixture
async def bundles(api_redis_url: str) -> AsyncIterator[RedisBundleStore]:
    client = redis_async.Redis.from_url(api_redis_url)
    try:
        yield RedisBundleStore(client, prefix="adoption")
    finally:
        await client.aclose()


def _errors(learner: Learner) -> float:
    return sum(s.value for m in learner.metrics.learner_errors.collect() for s in m.samples
               if s.name.endswith("_total"))  # fmt: skip


async def test_a_label_of_a_detached_partition_stops_no_bundle_and_no_checkpoint(
    repo: PgRepository, bundles: RedisBundleStore
) -> None:
    archived, live = NOW - timedelta(days=3), NOW - timedelta(days=1)
    await _score(repo, [_tx("old", archived), _tx("new", live)])
    day = archived.date()
    partition = f"scored_transactions_p{day:%Y%m%d}"
    await repo.pool.execute(f"ALTER TABLE scored_transactions DETACH PARTITION {partition}")
    # labels recorded by another process (a scorer): only the learner's sweep settles them
    seqs = await repo.receive_labels([_label("old", True), _label("new", False)])
    learner = _learner(repo, sweep=0.05, bundles=bundles)
    task = asyncio.create_task(learner.run())
    try:

        async def housekeeping_done() -> bool:
            snapshots = await repo.pool.fetchval("SELECT max(learn_seq) FROM model_snapshots")
            return snapshots == 1 and await bundles.latest() == 1

        await _until(housekeeping_done, "no bundle or no checkpoint after the label")
        assert await repo.label_statuses(seqs) == {seqs[0]: "parked", seqs[1]: "learned"}
        assert _errors(learner) == 0
        # the partition comes back (pg_restore + ATTACH): the parked label is learned
        bounds = f"FROM ('{day} 00:00+00') TO ('{day + timedelta(days=1)} 00:00+00')"
        await repo.pool.execute(
            f"ALTER TABLE scored_transactions ATTACH PARTITION {partition} FOR VALUES {bounds}"
        )

        async def adopted() -> bool:
            return (await repo.label_statuses(seqs))[seqs[0]] == "learned"

        await _until(adopted, "the parked label was not adopted once its record came back")
        await _until(lambda: _at(bundles, 2), "no bundle after the adoption")
        log = await repo.pool.fetch("SELECT seq, label_seq FROM learn_log ORDER BY seq")
        assert [(r["seq"], r["label_seq"]) for r in log] == [(1, seqs[1]), (2, seqs[0])]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _at(bundles: BundleStore, seq: int) -> bool:
    return await bundles.latest() == seq


async def test_adoption_orders_labels_and_learns_each_once(repo: PgRepository) -> None:
    learner = _learner(repo, sweep=3600)  # no sweep: claims and adoptions as the test says
    task = asyncio.create_task(learner.run())
    try:
        parked = [
            _label("same", True, T1),  # then the same value, later: a duplicate
            _label("earlier", True, T1),  # then False, later: must not override it
            _label("later", True, T3),  # then False, earlier: a flip, recorded
            _label("two", False, T3),  # two parked, the later-known one arriving first
            _label("two", True, T1),
        ]
        assert await learner.submit(parked) == ["parked"] * 5
        await _score(
            repo, [_tx(n, NOW - timedelta(days=1)) for n in ("same", "earlier", "later", "two")]
        )
        claimed = [
            _label("same", True, T2),
            _label("earlier", False, T2),
            _label("later", False, T2),
        ]
        assert await learner.submit(claimed) == ["learned"] * 3
        learner.notify_arrived(["same", "earlier", "later", "two"])

        async def settled() -> bool:
            rows = await repo.pool.fetch("SELECT status FROM labels WHERE status = 'parked'")
            return not rows

        await _until(settled, "parked labels were not adopted")
        rows = await repo.pool.fetch(
            "SELECT l.seq, l.transaction_id, l.is_fraud, l.status FROM labels l ORDER BY seq"
        )
        assert [r["status"] for r in rows] == [
            "duplicate", "superseded", "relabeled", "learned", "superseded",
            "learned", "learned", "learned",
        ]  # fmt: skip
        log = await repo.pool.fetch(
            "SELECT g.seq, g.transaction_id, g.is_fraud, g.label_seq, g.evaluate FROM learn_log g"
            " ORDER BY g.seq"
        )
        assert [r["seq"] for r in log] == list(range(1, len(log) + 1))
        assert len({r["label_seq"] for r in log}) == len(log), "a label was learned twice"
        learned: dict[str, list[bool]] = {}
        for r in log:
            learned.setdefault(r["transaction_id"], []).append(r["is_fraud"])
        assert learned == {
            "same": [True],
            "earlier": [False],
            "later": [False, True],
            "two": [False],
        }
        final = await repo.pool.fetch("SELECT transaction_id, label_is_fraud FROM transaction_ids")
        assert {r["transaction_id"]: r["label_is_fraud"] for r in final} == {
            "same": True, "earlier": False, "later": True, "two": False,
        }  # fmt: skip
        assert learner.pool.members[learner.pool.champion].learned == len(log)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class _BadParkedRows(MemoryRecords):
    """A label log whose parked-label query fails (a bad row), quoting a card-like number."""

    async def parked_ready(self, limit: int = 1000) -> list[object]:  # type: ignore[override]
        raise KeyError("tx of 4111111111111111")


class _Bundles:
    def __init__(self) -> None:
        self.published: list[int] = []

    async def publish(self, seq: int, blob: bytes, epoch: int = 0, force: bool = False) -> int:
        self.published.append(seq)
        return len(self.published)  # numbered in publication order, as the Redis store does

    async def latest(self) -> int | None:
        return self.published[-1] if self.published else None

    async def fetch(self, seq: int) -> bytes | None:
        return None

    async def published_at(self, seq: int) -> float | None:
        return None


async def test_a_failing_step_is_counted_and_housekeeping_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records, bundles = _BadParkedRows(), _Bundles()
    learner = _learner(records, sweep=0.05, bundles=bundles)
    caplog.set_level(logging.ERROR, "app.core.chores")
    task = asyncio.create_task(learner.run())
    try:

        async def published() -> bool:
            return bool(bundles.published) and _errors(learner) >= 2

        await _until(published, "no bundle while the adoption step fails")
        assert learner.metrics.learner_errors.labels("adopt")._value.get() >= 2
        assert learner.metrics.learner_errors.labels("bundle")._value.get() == 0
        assert "learner step adopt failed: KeyError" in caplog.text
        assert "4111111111111111" not in caplog.text
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
