"""The scoring and learning use-cases on in-memory ports: no server, a few milliseconds each.

Replay, conflict, two copies in one batch, a late event; a label before its transaction
(parked, then learned once), a duplicate label and a flipped one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.bootstrap import build_pool
from app.config import ScoringSettings, Settings
from app.core.decisions import WarmUp
from app.core.learning import CheckpointPolicy, Learner
from app.core.metrics import Metrics
from app.core.scoring import Conflict, Rejected, Scored, Scorer, ScoringService, group_writer
from features.reference import MemoryFeatureStore
from features.schema import Label, Transaction
from tests.app.fakes import MemoryRecords

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _tx(tx_id: str, amount: str = "42.50", hours_ago: float = 1, card: str = "c1") -> Transaction:
    return Transaction(
        transaction_id=tx_id,
        card_id=card,
        merchant_id="m1",
        amount=Decimal(amount),
        currency="EUR",
        timestamp=NOW - timedelta(hours=hours_ago),
        channel="ecom",
        country="FR",
    )


def _label(tx_id: str, is_fraud: bool = True) -> Label:
    return Label(transaction_id=tx_id, is_fraud=is_fraud, labeled_at=NOW, source="chargeback")


@contextlib.asynccontextmanager
async def running(
    champion: str = "blend", challengers: tuple[str, ...] = ("hat",), warmup: WarmUp | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Scoring service and learner on in-memory ports, the learner's task running."""
    scoring = ScoringSettings(champion=champion, challengers=challengers)
    pool = build_pool(Settings(_env_file=None, scoring=scoring), None)  # type: ignore[call-arg]
    records, metrics, features = MemoryRecords(), Metrics(), MemoryFeatureStore()
    learner = Learner(
        repository=records,
        pool=pool,
        features=features,
        metrics=metrics,
        checkpoints=CheckpointPolicy(every_labels=10_000, every_seconds=3600),
        warmup=warmup,
    )
    service = ScoringService(
        features,
        Scorer(pool, metrics, "test-set", warmup),
        records,
        metrics,
        group_writer(records, flush_ms=1, flush_max=64),
        on_stored=learner.notify_arrived,
        clock=lambda: NOW,
    )
    task = asyncio.create_task(learner.run())  # the one task that learns
    try:
        yield {
            "service": service, "learner": learner, "records": records, "pool": pool,
            "metrics": metrics,
        }  # fmt: skip
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def parts() -> AsyncIterator[dict[str, Any]]:
    async with running() as started:
        yield started


async def test_same_id_same_payload_is_a_replay_of_the_stored_answer(parts: dict[str, Any]) -> None:
    service = parts["service"]
    [first] = await service.score([_tx("t1")], "rest")
    [again] = await service.score([_tx("t1")], "kafka")
    assert isinstance(first, Scored) and isinstance(again, Scored)
    assert not first.score.replayed and again.score.replayed
    assert again.score.score == first.score.score
    assert len(parts["records"].transactions) == 1


async def test_same_id_other_payload_is_a_conflict(parts: dict[str, Any]) -> None:
    service = parts["service"]
    await service.score([_tx("t1")], "rest")
    [other] = await service.score([_tx("t1", amount="99.00")], "rest")
    assert other == Conflict("t1")
    assert parts["records"].transactions["t1"].payload == _tx("t1").canonical_json()


async def test_two_copies_in_one_batch_store_one_record(parts: dict[str, Any]) -> None:
    service = parts["service"]
    outcomes = await service.score([_tx("t1"), _tx("t2"), _tx("t1"), _tx("t1", "7.00")], "kafka")
    first, second, copy, conflict = outcomes
    assert isinstance(first, Scored) and not first.score.replayed
    assert isinstance(second, Scored) and not second.score.replayed
    assert isinstance(copy, Scored) and copy.score.replayed
    assert copy.score.score == first.score.score
    assert conflict == Conflict("t1")
    assert sorted(parts["records"].transactions) == ["t1", "t2"]


async def test_a_late_event_is_rejected_and_not_stored(parts: dict[str, Any]) -> None:
    service = parts["service"]
    await service.score([_tx("new", hours_ago=1)], "rest")
    [late] = await service.score([_tx("old", hours_ago=24 * 30)], "rest")
    assert isinstance(late, Rejected) and late.reason == "late_event"
    assert "old" not in parts["records"].transactions


async def test_label_before_its_transaction_is_parked_then_learned_once(
    parts: dict[str, Any],
) -> None:
    service, learner, records = parts["service"], parts["learner"], parts["records"]
    assert await learner.submit([_label("t1")]) == ["parked"]
    assert records.learn_log == []
    await service.score([_tx("t1")], "rest")  # the service tells the learner it arrived
    # a job queued behind the arrival pass: once it is answered, the parked label was adopted
    assert await learner.submit([_label("not-seen-yet")]) == ["parked"]
    assert [row[1:3] for row in records.learn_log] == [("t1", True)]
    assert await learner.submit([_label("t1")]) == ["duplicate"]
    assert await learner.submit([_label("t1", is_fraud=False)]) == ["relabeled"]
    assert [row[1:3] for row in records.learn_log] == [("t1", True), ("t1", False)]
    assert records.current_label["t1"] is False


async def test_a_label_trains_every_model_once(parts: dict[str, Any]) -> None:
    service, learner, pool = parts["service"], parts["learner"], parts["pool"]
    await service.score([_tx(f"t{i}", hours_ago=10 - i) for i in range(5)], "rest")
    before = {row["name"]: row["labels"] for row in pool.status()}
    await learner.submit([_label(f"t{i}", i % 2 == 0) for i in range(5)])
    await learner.submit([_label("t0")])  # a duplicate: learned by nobody
    after = {row["name"]: row["labels"] for row in pool.status()}
    assert {name: after[name] - before[name] for name in after} == {n: 5 for n in after}


async def test_a_stacked_champion_learns_from_the_parts_stored_at_scoring() -> None:
    async with running(champion="stack", challengers=()) as started:
        service, learner, records = started["service"], started["learner"], started["records"]
        await service.score([_tx(f"t{i}", hours_ago=10 - i) for i in range(6)], "rest")
        stored = records.transactions["t0"].scores[0]
        assert stored["name"] == "stack" and set(stored["parts"]) >= {"logreg"}
        await learner.submit([_label(f"t{i}", i % 3 == 0) for i in range(6)])
    stack = started["pool"].members["stack"].model
    assert stack.labels == 6 and stack.fallbacks == 0


async def test_warm_up_approves_until_the_champion_has_learned_enough() -> None:
    warmup = WarmUp(labels=4, frauds=2)
    async with running(warmup=warmup) as started:
        service, learner = started["service"], started["learner"]
        first = await service.score([_tx(f"t{i}", hours_ago=20 - i) for i in range(8)], "rest")
        # a fresh model answers the review threshold: warm-up approves and says why
        assert {o.score.decision for o in first if isinstance(o, Scored)} == {"approve"}
        for outcome in first:
            assert isinstance(outcome, Scored) and outcome.score.decided_by == "warmup"
            assert [r.code for r in outcome.score.reasons] == ["model_warming_up"]
        await learner.submit([_label(f"t{i}", is_fraud=i < 1) for i in range(4)])
        assert not warmup.done  # four labels, one fraud: not yet
        [still] = await service.score([_tx("t8", hours_ago=11)], "rest")
        assert isinstance(still, Scored) and still.score.decided_by == "warmup"
        await learner.submit([_label("t4", is_fraud=True)])
        assert warmup.done
        [decided] = await service.score([_tx("t9", hours_ago=10)], "rest")
        assert isinstance(decided, Scored) and decided.score.decided_by == "model"
        assert "model_warming_up" not in [r.code for r in decided.score.reasons]
    layers = {
        s.labels["layer"]: s.value
        for family in started["metrics"].registry.collect()
        if family.name == "riverguard_decided_by"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert layers == {"model": 1.0, "warmup": 9.0}
