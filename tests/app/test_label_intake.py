"""A label submitted while the leader sweeps is answered, however fast the sweep settles it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.bootstrap import build_pool
from app.config import Settings
from app.core.learning import CheckpointPolicy, Learner
from app.core.metrics import Metrics
from features.reference import MemoryFeatureStore
from features.schema import Label
from tests.app.fakes import MemoryRecords


@dataclass
class InstantSweep(MemoryRecords):
    """Labels whose insert returns only after the leader's sweep has settled them.

    The Postgres insert can return late the same way: the commit is visible to the sweep's
    query while the submitting request still waits for its connection to be released.
    """

    learner: Learner | None = None

    async def receive_labels(self, labels: Sequence[Label]) -> list[int]:
        seqs = await super().receive_labels(labels)
        assert self.learner is not None
        self.learner.claim_soon()
        for _ in range(10_000):  # bounded: the owner task settles them within a few turns
            if all(lb.status != "received" for lb in self.labels if lb.seq in seqs):
                break
            await asyncio.sleep(0)
        return seqs


async def test_a_label_settled_before_its_insert_returns_is_answered() -> None:
    records = InstantSweep()
    learner = Learner(
        repository=records,
        pool=build_pool(Settings(_env_file=None), None),  # type: ignore[call-arg]
        features=MemoryFeatureStore(),
        metrics=Metrics(),
        checkpoints=CheckpointPolicy(every_labels=10_000, every_seconds=3600),
    )
    records.learner = learner
    task = asyncio.create_task(learner.run())
    try:
        now = datetime.now(UTC)
        labels = [
            Label(transaction_id=f"t{i}", is_fraud=True, labeled_at=now, source="chargeback")
            for i in range(3)
        ]
        async with asyncio.timeout(10):  # before the fix: waits forever for a settled label
            assert await learner.submit(labels) == ["parked"] * 3
            assert await learner.submit(labels[:1]) == ["parked"]
        assert [lb.status for lb in records.labels] == ["parked"] * 4
        assert not learner._waiting and not learner._early  # nothing left behind
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
