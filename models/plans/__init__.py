"""models room: inference plans — compact, immutable, picklable copies of trained models.

A scorer that only evaluates published models need not walk River objects row by row: a
plan holds what prediction reads (weights, scaler statistics, tree nodes as flat arrays,
vote weights) and answers the same number as :meth:`models.pool.ModelPool.score` for that
model, row by row (:meth:`Plan.predict_one`, a dict of cleaned features) or for a matrix
(:meth:`Plan.predict_many`, columns in :attr:`Plan.features` order, NaN = missing) with
numpy. No River object, no I/O; a stack's plan also gives the member parts to store with the
score (:meth:`Plan.score_one`). NaN from a plan means "the River object raises here": report
the pool's fallback score and count a predict error, as the pool does.

>>> from models import zoo
>>> model = zoo.ZOO["logreg"].factory()
>>> for i in range(50):
...     model.learn_one({"amount": float(i), "n": float(i % 3)}, i % 10 == 0)
>>> plan = compile_plan(model)
>>> x = {"amount": 7.0}
>>> plan.features, plan.predict_one(x) == model.predict_proba_one(x)[True]
(('amount', 'n'), True)
>>> plan.predict_many(matrix([x], plan.features)).tolist() == [plan.predict_one(x)]
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models.plans.base import Plan, matrix
from models.plans.compile import compile_plan

if TYPE_CHECKING:
    from models.pool import ModelPool

__all__ = ["Plan", "compile_plan", "features_of", "for_pool", "matrix"]


def for_pool(pool: ModelPool) -> dict[str, Plan | None]:
    """Each member's plan, champion first (None: score that member with its River object).

    Compile once per loaded bundle, never per request. A member whose compilation fails is
    left to its River object: a plan is an optimisation, never a reason to stop scoring.
    """
    plans: dict[str, Plan | None] = {}
    for name in pool.names():
        try:
            plans[name] = compile_plan(pool.members[name].model)
        except Exception:  # an unforeseen River state: the River object still scores
            plans[name] = None
    return plans


def features_of(plans: dict[str, Plan | None]) -> tuple[str, ...]:
    """Every feature any plan reads, first seen first: one matrix serves them all."""
    names: dict[str, None] = {}
    for plan in plans.values():
        if plan is not None:
            names.update(dict.fromkeys(plan.features))
    return tuple(names)
