"""Small seeded streams and pools shared by the models tests (imported as a plain module)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import pytest

from models import pool, zoo

FEATURES = ["amount", "card_count_1d", "card_amount_to_mean_30d", "merchant_fraud_ratio_7d"]


def stream(n: int, seed: int = 3, fraud_rate: float = 0.05) -> list[tuple[dict[str, float], bool]]:
    """Labelled transactions where fraud is big, frequent, unusual and at risky merchants."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fraud = rng.random() < fraud_rate
        x = {
            "amount": rng.lognormvariate(4 + (1.5 if fraud else 0), 1),
            "card_count_1d": float(rng.randint(0, 10) + (5 if fraud else 0)),
            "card_amount_to_mean_30d": rng.random() * (6 if fraud else 2),
            "merchant_fraud_ratio_7d": rng.random() * (0.5 if fraud else 0.05),
        }
        out.append((x, fraud))
    return out


def new_pool(*names: str, **kwargs: object) -> pool.ModelPool:
    return pool.ModelPool([zoo.ZOO[n] for n in names], champion=names[0], **kwargs)  # type: ignore[arg-type]


def train(models: pool.ModelPool, events: list[tuple[dict[str, float], bool]]) -> None:
    """Prequential: score, then learn with the scores (and stack parts) given at scoring time."""
    for x, y in events:
        given = models.score(x)
        scored = {s.name: s.score for s in given}
        parts = {s.name: s.parts for s in given if s.parts is not None}
        models.learn(x, y, scored, parts)


# Models whose learning costs seconds per test (forests, and the blends and stacks built on
# them): their cases run in `make test`; `make test-fast` keeps the cheaper members, one
# forest (arf_all) among them, so every kind of model and plan is still exercised there.
HEAVY = frozenset({"arf", "arf_bounded", "blend", "stack", "stack_live"})


def by_cost(names: Iterable[str]) -> list[Any]:
    """``names`` as pytest parameters, the :data:`HEAVY` ones marked ``slow``."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in names]
