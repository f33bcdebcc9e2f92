"""The demo's replay is held while the models lag the labels (app.tools.demo_pace).

Compressed, the demo's labels arrive faster than one learner learns them, and a scorer
answers a label at once: without the hold, the second week was scored by models days of
event time behind (the demo's AP of 0.016). Here a service that learns one label per few
event-loop turns stands in for the learner; the replay is the simulator's, split as in the
demo (a share at a fixed rate, the rest as fast as it goes).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import pytest

from app.tools.demo_pace import Hold
from simulator.generate import SimConfig, generate
from simulator.records import Record
from simulator.replay import Split, replay
from simulator.sinks import Delivery

CONCURRENCY, SENDERS = 8, 4


@dataclass
class SlowLearner:
    """Takes labels in at once, learns them one at a time, slowly; notes at every transaction
    how many labels it had taken in but not learned (what its scores would miss)."""

    turns_per_label: int = 4
    taken: int = 0
    learned: int = 0
    behind_at_scoring: list[int] = field(default_factory=list)

    async def learn_forever(self) -> None:
        while True:
            for _ in range(self.turns_per_label):
                await asyncio.sleep(0)
            if self.learned < self.taken:
                self.learned += 1

    async def lag(self) -> int:
        return self.taken - self.learned


class _Sink:
    """A replay target's context manager (nothing to open or close)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class Door(_Sink):
    """One of the learner's two intakes (Kafka, REST)."""

    def __init__(self, name: str, learner: SlowLearner) -> None:
        self.name, self.learner = name, learner

    async def send(self, record: Record) -> Delivery:
        if record.kind == "label":
            self.learner.taken += 1
        else:
            self.learner.behind_at_scoring.append(self.learner.taken - self.learner.learned)
        await asyncio.sleep(0)
        return "accepted", "ok"


@pytest.fixture(scope="module")
def records() -> list[Record]:
    # two weeks: labels pile up in the second one, as in the demo
    return list(generate(SimConfig(cards=80, merchants=40, days=14, seed=5)))


async def _replay(records: list[Record], slack: int | None) -> tuple[SlowLearner, Hold | None]:
    learner = SlowLearner()
    hold = None if slack is None else Hold(learner.lag, slack=slack, every_s=0.0, poll_s=0.0)
    learning = asyncio.create_task(learner.learn_forever())
    try:
        split = Split(Door("http", learner), 0.2, rate=20_000, senders=SENDERS)
        summary = await replay(
            records, Door("kafka", learner), split=split, concurrency=CONCURRENCY, hold=hold
        )
    finally:
        learning.cancel()
        await asyncio.gather(learning, return_exceptions=True)
    assert summary.failed == 0
    assert summary.outcomes["label"]["accepted"] == learner.taken > 0
    transactions = sum(1 for r in records if r.kind == "transaction")
    assert len(learner.behind_at_scoring) == transactions
    return learner, hold


async def test_held_replay_scores_with_models_at_most_slack_behind(records: list[Record]) -> None:
    labels = sum(1 for r in records if r.kind == "label")
    free, _ = await _replay(records, slack=None)
    # the situation of the compressed demo: unheld, the models fall far behind
    assert max(free.behind_at_scoring) > labels // 4
    slack = 25
    held, hold = await _replay(records, slack=slack)
    assert hold is not None and hold.holds > 0 and not hold.stalled
    assert held.taken == labels
    # a record read once the hold let the replay go: at most those in flight beside it
    assert max(held.behind_at_scoring) <= slack + CONCURRENCY + SENDERS


async def test_a_learner_that_never_catches_up_does_not_hang_the_replay(
    records: list[Record],
) -> None:
    async def stuck() -> int:
        return 10_000

    hold = Hold(stuck, slack=10, every_s=0.0, poll_s=0.001, stall_s=0.05)
    head = records[:200]
    summary = await replay(head, _Nowhere(), concurrency=CONCURRENCY, hold=hold)
    assert summary.records == len(head)
    assert hold.stalled and hold.holds == 1 and hold.worst == 10_000


class _Nowhere(_Sink):
    name = "nowhere"

    async def send(self, record: Record) -> Delivery:
        return "accepted", "ok"
