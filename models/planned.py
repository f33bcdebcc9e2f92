"""models room: a pool's members scored with their installed inference plans.

A process that does not learn (a bundle follower) compiles each member's plan once per
bundle (:func:`models.plans.for_pool`) and installs them on its pool
(:meth:`models.pool.ModelPool.install_plans`). :class:`Installed` keeps, beside the plans, the
one feature order every plan's columns are cut from, so a batch of rows becomes one matrix
(:meth:`Installed.matrix`) and each plan reads its own column slice.

A plan answers NaN where the River object would raise (or answer garbage): the caller then
reports the pool's fallback score and counts the fault, as :class:`models.member.Member` does.

>>> from models import zoo
>>> model = zoo.ZOO["logreg"].factory()
>>> for i in range(50):
...     model.learn_one({"amount": float(i), "n": float(i % 3)}, i % 10 == 0)
>>> installed = Installed.of({"logreg": plans.compile_plan(model), "hat": None})
>>> installed.plan("hat"), installed.features
(None, ('amount', 'n'))
>>> X = installed.matrix([{"amount": 3.0}, {"n": 2.0}])
>>> values, parts = installed.score_many("logreg", X)
>>> len(values), parts
(2, None)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models import guard, plans
from models.member import Member, ModelScore, Role
from models.plans.base import Floats, Index, Plan


@dataclass(frozen=True)
class Guarded:
    """Rows guarded into one matrix, and what the guard dropped and clipped on the way."""

    X: Floats
    dropped: int
    clipped: int


@dataclass(frozen=True)
class Installed:
    """The plans of one pool's members (None: that member scores with its River object)."""

    plans: dict[str, Plan | None]
    features: tuple[str, ...]  # every feature any plan reads: the columns of one matrix
    columns: dict[str, Index | None]  # each plan's columns in ``features`` (None: all of them)

    @classmethod
    def of(cls, compiled: Mapping[str, Plan | None]) -> Installed:
        found = dict(compiled)
        features = plans.features_of(found)
        where = {name: i for i, name in enumerate(features)}
        columns: dict[str, Index | None] = {}
        for name, plan in found.items():
            if plan is None:
                continue
            index = np.array([where[f] for f in plan.features], dtype=np.intp)
            # a plan reading every column in order takes the matrix itself (no copy)
            columns[name] = None if plan.features == features else index
        return cls(found, features, columns)

    def plan(self, name: str) -> Plan | None:
        return self.plans.get(name)

    def matrix(self, rows: Sequence[Mapping[str, float]]) -> Floats:
        """Cleaned rows as one matrix in :attr:`features` order (NaN: missing)."""
        return plans.matrix(rows, self.features)

    def guarded_matrix(self, rows: Sequence[Mapping[str, object]]) -> Guarded | None:
        """Raw rows guarded and laid out at once, as :func:`models.guard.clean_features` row
        by row then :meth:`matrix` would; None (clean row by row) unless every row has the
        same keys in the same order and only numbers (what the feature service writes)."""
        keys = tuple(rows[0])
        if any(tuple(row) != keys for row in rows):
            return None
        raw = np.array([list(row.values()) for row in rows])
        if raw.dtype != np.float64 or raw.shape != (len(rows), len(keys)):
            return None  # a string, Decimal, None...: the per-row guard decides
        finite = np.isfinite(raw)
        huge = finite & (np.abs(raw) > guard.MAX_ABS_VALUE)
        clean = np.where(finite, raw, np.nan)
        if huge.any():
            clean = np.where(huge, np.copysign(guard.MAX_ABS_VALUE, raw), clean)
        where = {name: i for i, name in enumerate(keys)}
        nan_column = len(keys)  # a feature no row has: missing everywhere
        index = [where.get(name, nan_column) for name in self.features]
        padded = np.concatenate([clean, np.full((len(rows), 1), np.nan)], axis=1)
        dropped = int(finite.size - np.count_nonzero(finite))
        return Guarded(padded[:, index], dropped, int(np.count_nonzero(huge)))

    def score_many(self, name: str, X: Floats) -> tuple[Floats, dict[str, Floats] | None]:
        """Scores (NaN: fallback) and a stack's member parts (NaN: left out) of ``name``."""
        plan = self.plans[name]
        assert plan is not None
        index = self.columns[name]
        return plan.score_many(X if index is None else X[:, index])


def row_parts(parts: Mapping[str, list[float]], i: int) -> dict[str, float]:
    """Row ``i``'s member parts as :meth:`models.stack.Stack.predict_parts` gives them."""
    found = {}
    for name, column in parts.items():
        value = column[i]
        if value == value:  # NaN: the member was left out of this row
            found[name] = value
    return found


def column(
    name: str, member: Member, role: Role, installed: Installed, X: Floats, fallback: float
) -> list[ModelScore]:
    """Member ``name``'s :class:`ModelScore` per row of ``X``, from its plan (faults counted)."""
    values, parts = installed.score_many(name, X)
    version = member.version
    columns = {k: v.tolist() for k, v in parts.items()} if parts is not None else None
    out = []
    for i, value in enumerate(values.tolist()):
        if value != value:  # NaN: River would raise here
            member.predict_errors += 1
            out.append(ModelScore(name, version, fallback, role, True, None))
            continue
        found = row_parts(columns, i) if columns is not None else None
        out.append(ModelScore(name, version, value, role, False, found))
    return out


def checked(
    member: Member, value: float, parts: dict[str, float] | None
) -> tuple[float | None, dict[str, float] | None]:
    """A plan's answer as :meth:`Member.predict_with_parts` gives it (NaN: counted, None)."""
    if value != value:
        member.predict_errors += 1
        return None, None
    return value, parts


def predictor(member: Member, plan: Plan) -> Callable[[dict[str, float]], float | None]:
    """:meth:`Member.predict` answered by ``plan`` (for explanations)."""

    def predict(x: dict[str, float]) -> float | None:
        return checked(member, plan.predict_one(x), None)[0]

    return predict
