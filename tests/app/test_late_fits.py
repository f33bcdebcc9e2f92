"""A booster fit that finishes after the last label reaches the followers: the learner
publishes it between labels and ships a bundle, and `history backfill` waits for it."""

from __future__ import annotations

import random
from typing import Any

from app.core.learning import CheckpointPolicy, Learner
from app.core.metrics import Metrics
from app.tools.backfill import _boosters
from features.reference import MemoryFeatureStore
from models import pool as model_pool
from models import zoo
from models.booster import WindowedBooster
from tests.app.fakes import MemoryRecords
from tests.app.test_learner_backlog import Bundles


def _booster() -> WindowedBooster:
    return WindowedBooster(n_trees=20, first_fit_after=50, refit_every=10**6, min_frauds=3,
                           publish_after=1000, legit_share=1.0, wait_for_fit=False)  # fmt: skip


async def test_a_fit_done_after_the_last_label_is_published_and_bundled_without_labels() -> None:
    pool = model_pool.ModelPool([zoo.ModelSpec("late", _booster, version="1")], champion="late")
    rng = random.Random(3)
    for i in range(60):
        fraud = i % 10 == 0
        pool.learn({"amount": rng.random() + fraud}, fraud, {}, at=1_700_000_000.0 + i)
    learner = Learner(
        repository=MemoryRecords(), pool=pool, features=MemoryFeatureStore(), metrics=Metrics(),
        checkpoints=CheckpointPolicy(every_labels=10_000, every_seconds=3600),
        bundles=Bundles(), bundle_every_seconds=1e-9, last_learn_seq=60,  # type: ignore[arg-type]
    )  # fmt: skip
    booster: Any = pool.members["late"].model
    assert booster._fit is not None and booster.abstains()  # started at label 50, unpublished
    await learner.publish_bundle()  # the models at the last label: the booster abstains
    booster._fit.thread.join()
    await learner._housekeeping()  # no label came: the finished fit is published all the same
    assert booster.state()["fitted"] and booster.state()["fitted_labels"] == 50
    await learner._housekeeping()
    # the log did not move, the models did: a second bundle at the same position, then none
    assert learner.bundles.seqs == [60, 60]  # type: ignore[union-attr]
    assert pool.status()[0]["booster"]["fits"] == 1


def test_the_backfill_waits_for_a_fit_the_learner_will_publish_and_for_a_scorer_behind() -> None:
    def models(fits: int, settling: bool = False) -> list[dict[str, Any]]:
        return [{"name": "stack_live", "booster": {"fits": fits, "settling": settling}},
                {"name": "hat", "booster": None}]  # fmt: skip

    assert _boosters(models(1, settling=True), models(1)) == (["stack_live"], [])
    assert _boosters(models(2), models(1)) == ([], ["stack_live"])
    assert _boosters(models(2), models(2)) == ([], [])
    older_scorer = [{"name": "stack_live"}, {"name": "hat"}]  # no booster field: not waited on
    assert _boosters(models(2), older_scorer) == ([], [])
