"""Build a whole simulated stream: population, genuine spending, fraud by phase, labels.

>>> stream = simulate(SimConfig(cards=60, merchants=60, days=5, seed=3))
>>> first = next(iter(stream))
>>> first.kind, first.data["card_id"].startswith("card_")
('transaction', True)
>>> stream.summary.transactions == sum(1 for r in stream if r.kind == "transaction")
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from simulator import emit
from simulator.campaigns import breach_merchants, compromise_cards
from simulator.config import SCENARIOS, LabelConfig, Phase, SimConfig
from simulator.frame import LEGIT, TxFrame
from simulator.labels import SOURCES, Labels, make_labels
from simulator.legit import legit_transactions
from simulator.population import DAY_MS, build_population
from simulator.records import Record
from simulator.scenarios import Attack

__all__ = [
    "GenerationSummary",
    "LabelConfig",
    "Phase",
    "SimConfig",
    "Stream",
    "generate",
    "simulate",
]


@dataclass(frozen=True)
class GenerationSummary:
    """What a stream holds; ``campaign_onset`` is when a never-seen scenario starts (drift)."""

    seed: int
    start: datetime
    end: datetime
    transactions: int
    frauds: int
    by_scenario: dict[str, int]
    labels: dict[str, int]
    positive_labels: int
    dropped_labels: int
    campaign_onset: datetime | None
    first_seen: dict[str, datetime] = field(default_factory=dict)

    @property
    def fraud_rate(self) -> float:
        return self.frauds / self.transactions if self.transactions else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (times as RFC 3339)."""

        def stamp(moment: datetime | None) -> str | None:
            if moment is None:
                return None
            return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

        return {
            "seed": self.seed,
            "start": stamp(self.start),
            "end": stamp(self.end),
            "transactions": self.transactions,
            "frauds": self.frauds,
            "fraud_rate": round(self.fraud_rate, 5),
            "by_scenario": dict(self.by_scenario),
            "labels": dict(self.labels),
            "positive_labels": self.positive_labels,
            "dropped_labels": self.dropped_labels,
            "campaign_onset": stamp(self.campaign_onset),
            "first_seen": {name: stamp(moment) for name, moment in self.first_seen.items()},
        }


class Stream:
    """A generated stream: iterate it (any number of times) for records; read its summary."""

    def __init__(self, summary: GenerationSummary, factory: Callable[[], Iterator[Record]]) -> None:
        self.summary = summary
        self._factory = factory

    def __iter__(self) -> Iterator[Record]:
        return self._factory()

    def __len__(self) -> int:
        return self.summary.transactions + sum(self.summary.labels.values())


def generate(config: SimConfig) -> Iterator[Record]:
    """The records of the stream ``config`` describes, in event-time order."""
    return iter(simulate(config))


def simulate(config: SimConfig) -> Stream:
    """Draw everything up front (fast, vectorised); records are built while iterating."""
    pop_seed, legit_seed, fraud_seed, label_seed = np.random.SeedSequence(config.seed).spawn(4)
    world = build_population(config, np.random.default_rng(pop_seed))
    legit = legit_transactions(config, world, np.random.default_rng(legit_seed))
    attack = Attack(config, world, legit, np.random.default_rng(fraud_seed))
    horizon = int(config.days * DAY_MS)
    frame = TxFrame.concat([legit, *_fraud(attack, horizon)])
    frame = frame.take(np.flatnonzero((frame.time >= 0) & (frame.time < horizon)))
    frame = frame.take(np.argsort(frame.time, kind="stable"))
    labels = make_labels(
        frame.time,
        frame.scenario,
        frame.incident,
        config.labels,
        horizon,
        np.random.default_rng(label_seed),
    )
    tag = format(config.seed & 0xFFFFFFFF, "x")
    ids = [f"tx_{tag}_{i:09d}" for i in range(len(frame))]
    summary = _summary(config, frame, labels, horizon)

    def factory() -> Iterator[Record]:
        cols = emit.columns(world, frame, ids, emit.rfc3339(config.start, frame.time))
        return emit.records(cols, frame.time, labels, emit.rfc3339(config.start, labels.time))

    return Stream(summary, factory)


def _fraud(attack: Attack, horizon: int) -> list[TxFrame]:
    """Each phase's fraud budget, split over its scenarios by weight."""
    config, frames = attack.config, []
    ends = [phase.start for phase in config.phases[1:]] + [1.0]
    for phase, end in zip(config.phases, ends, strict=True):
        window = (int(phase.start * horizon), int(end * horizon))
        lo, hi = np.searchsorted(attack.legit.time, window)
        rate = config.fraud_rate if phase.fraud_rate is None else phase.fraud_rate
        total = sum(phase.mix.values())
        for name in SCENARIOS:
            weight = phase.mix.get(name, 0.0)
            if weight <= 0 or total <= 0:
                continue
            budget = rate * (hi - lo) * weight / total
            frames.append(_plan(attack, name, budget, window, phase.amount_factor))
    return frames


def _plan(
    attack: Attack, name: str, budget: float, window: tuple[int, int], factor: float
) -> TxFrame:
    if name == "compromised_merchant":
        return breach_merchants(attack, budget, window, factor)
    if name == "compromised_card":
        return compromise_cards(attack, budget, window, factor)
    return attack.plan(name, budget, window, factor)


def _summary(config: SimConfig, frame: TxFrame, labels: Labels, horizon: int) -> GenerationSummary:
    fraud = frame.scenario != LEGIT
    by_scenario = {name: int((frame.scenario == i).sum()) for i, name in enumerate(SCENARIOS)}
    first_seen = {}
    for i, name in enumerate(SCENARIOS):
        rows = np.flatnonzero(frame.scenario == i)
        if len(rows):
            first_seen[name] = config.start + timedelta(milliseconds=int(frame.time[rows[0]]))
    counts = Counter(SOURCES[s] for s in labels.source.tolist())
    onset = config.campaign_onset_fraction()
    return GenerationSummary(
        seed=config.seed,
        start=config.start,
        end=config.start + timedelta(milliseconds=horizon),
        transactions=len(frame),
        frauds=int(fraud.sum()),
        by_scenario=by_scenario,
        labels={source: counts.get(source, 0) for source in SOURCES},
        positive_labels=int(labels.is_fraud.sum()),
        dropped_labels=labels.dropped,
        campaign_onset=None
        if onset is None
        else config.start + timedelta(milliseconds=int(onset * horizon)),
        first_seen=first_seen,
    )
