"""A takeover re-learns the log without holding the event loop: requests and the lease
renewal share that loop, so catch-up and restore yield to it every few rows (server-free:
the in-memory log never suspends, so only the learner's own yields let the loop tick)."""

from __future__ import annotations

import asyncio

from app.bootstrap import build_pool
from app.config import ScoringSettings, Settings
from app.core import publishing
from app.core.learning import CheckpointPolicy, Learner
from app.core.metrics import Metrics
from features.reference import MemoryFeatureStore
from tests.app.test_core_outcomes import _label, _tx, running

LABELS = 400


class Ticker:
    """Counts the turns the event loop gives a concurrent coroutine (a request, a renewal)."""

    def __init__(self) -> None:
        self.ticks, self.done = 0, False

    async def run(self) -> None:
        while not self.done:
            self.ticks += 1
            await asyncio.sleep(0)


def _standby(records: object) -> Learner:
    scoring = ScoringSettings(champion="blend", challengers=("hat",))
    return Learner(
        repository=records,  # type: ignore[arg-type]
        pool=build_pool(Settings(_env_file=None, scoring=scoring), None),  # type: ignore[call-arg]
        features=MemoryFeatureStore(), metrics=Metrics(), checkpoints=CheckpointPolicy(),
    )  # fmt: skip


async def test_catch_up_and_restore_of_many_labels_keep_the_loop_ticking() -> None:
    async with running() as env:
        ids = [f"t{i}" for i in range(LABELS)]
        await env["service"].score(
            [_tx(i, hours_ago=2 + n / 100) for n, i in enumerate(ids)], "rest"
        )
        statuses = await env["learner"].submit(
            [_label(i, is_fraud=n % 9 == 0) for n, i in enumerate(ids)]
        )
        assert set(statuses) == {"learned"}
        records = env["records"]

    for relearn in ("catch_up", "restore"):
        standby, ticker = _standby(records), Ticker()
        task = asyncio.create_task(ticker.run())
        relearned = await getattr(standby, relearn)()
        during = ticker.ticks  # the ticker ran only when the learner yielded
        ticker.done = True
        await task
        assert relearned == LABELS and standby.last_learn_seq == LABELS
        assert during >= LABELS // publishing.YIELD_EVERY > 0, relearn
        assert standby.pool.members["blend"].learned == LABELS
