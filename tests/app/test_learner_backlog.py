"""A backlog of received labels does not hold back the learner's bundles: it publishes between
claim batches, so followers never score for minutes with models far behind the learner."""

from __future__ import annotations

from app.bootstrap import build_pool
from app.config import ScoringSettings, Settings
from app.core.learning import CheckpointPolicy, Learner
from app.core.metrics import Metrics
from features.reference import MemoryFeatureStore
from tests.app.fakes import MemoryRecords
from tests.app.test_core_outcomes import _label, _tx, running


class Bundles:
    """The bundle store port, remembering what was published."""

    def __init__(self) -> None:
        self.seqs: list[int] = []

    async def publish(self, seq: int, blob: bytes, epoch: int = 0, force: bool = False) -> int:
        self.seqs.append(seq)
        return len(self.seqs)


async def test_bundles_are_published_between_claim_batches() -> None:
    async with running() as parts:
        for i in range(5):
            await parts["service"].score([_tx(f"t{i}", hours_ago=5 - i)], "rest")
    records: MemoryRecords = parts["records"]
    await records.receive_labels([_label(f"t{i}") for i in range(5)])
    scoring = ScoringSettings(champion="blend", challengers=("hat",))
    learner = Learner(
        repository=records,
        pool=build_pool(Settings(_env_file=None, scoring=scoring), None),  # type: ignore[call-arg]
        features=MemoryFeatureStore(),
        metrics=Metrics(),
        checkpoints=CheckpointPolicy(every_labels=10_000, every_seconds=3600),
        bundles=Bundles(),  # type: ignore[arg-type]
        bundle_every_seconds=1e-9,
    )
    await learner._claim(batch=2)
    published = learner.bundles.seqs  # type: ignore[union-attr]
    # batches of 2, 2 and 1: a bundle after each full batch, before the next one is claimed
    # (the sweep that ran the claim publishes the rest); without it, none until the end
    assert published == [2, 4], published
