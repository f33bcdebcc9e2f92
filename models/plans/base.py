"""models room: what every inference plan shares — answers, failures, the pool's output guard.

A *part* reproduces one River object's ``predict_proba_one`` answer reduced to three facts:
``p`` (``answer.get(True, 0.0)``), ``present`` (the answer dict was non-empty: a blend and a
stack treat an empty answer as "no vote") and ``failed`` (the River object raises for this
input: the pool then reports its fallback score). A :class:`Plan` wraps the outermost part
and applies :func:`models.guard.probability` exactly as :meth:`models.member.Member.predict`
does, so a plan's number is the number ``ModelPool.score`` reports, NaN standing for "the
model failed here: report the pool's fallback score and count the fault".

>>> guarded(0.3, True), guarded(0.3, False), guarded(1.0 + 1e-12, True), guarded(2.0, True)
(0.3, 0.0, 1.0, nan)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Index = npt.NDArray[np.intp]

#: the tolerance of :func:`models.guard.probability` around [0, 1]
SLACK = 1e-9


class Failed(Exception):
    """The River object raises for this input (a River bug; see :mod:`models.plans.trees`)."""


@dataclass(frozen=True)
class Answers:
    """Answers for a batch of rows: P(True), non-empty answer, River would raise."""

    p: Floats
    present: Bools
    failed: Bools


class Part(Protocol):
    """One River object's answer, row by row or for a matrix in ``features`` order."""

    @property
    def features(self) -> tuple[str, ...]: ...

    def answer_one(self, x: Mapping[str, float]) -> tuple[float, bool]:
        """(P(True), answer non-empty); raises :class:`Failed` where River raises."""
        ...

    def answer_many(self, X: Floats) -> Answers: ...


def union(parts: Sequence[Part]) -> tuple[tuple[str, ...], tuple[Index, ...]]:
    """The features of several parts (first seen first) and each part's columns in them."""
    names: dict[str, int] = {}
    for part in parts:
        for name in part.features:
            names.setdefault(name, len(names))
    columns = tuple(np.array([names[n] for n in p.features], dtype=np.intp) for p in parts)
    return tuple(names), columns


def guarded(p: float, present: bool) -> float:
    """:func:`models.guard.probability` of an answer; NaN where it answers None."""
    if not present:
        return 0.0
    if not -SLACK <= p <= 1.0 + SLACK:  # NaN fails this too
        return math.nan
    return min(1.0, max(0.0, float(p)))


def guarded_many(answers: Answers) -> Floats:
    """:func:`guarded` for a batch (and NaN where River raises)."""
    p = answers.p
    with np.errstate(invalid="ignore"):
        bad = answers.failed | (answers.present & ~((p >= -SLACK) & (p <= 1.0 + SLACK)))
    out = np.where(answers.present, np.clip(p, 0.0, 1.0), 0.0)
    out[bad] = math.nan
    return out


def matrix(rows: Sequence[Mapping[str, float]], features: Sequence[str]) -> Floats:
    """Rows of cleaned features as a matrix in ``features`` order, NaN where one is missing."""
    nan = math.nan
    out = np.array([[row.get(name, nan) for name in features] for row in rows], dtype=np.float64)
    return out.reshape(len(rows), len(features))


@dataclass(frozen=True)
class Plan:
    """A compiled model: P(fraud) for cleaned features (see :func:`models.guard.clean_features`).

    ``predict_one`` takes the dict the pool hands its models; ``predict_many`` a matrix whose
    columns are :attr:`features` (NaN: feature missing). Both answer what
    :meth:`models.member.Member.predict` answers, NaN where the River object raises.
    """

    part: Part
    kind: str

    @property
    def features(self) -> tuple[str, ...]:
        return self.part.features

    def predict_one(self, x: Mapping[str, float]) -> float:
        try:
            p, present = self.part.answer_one(x)
        except Failed:
            return math.nan
        return guarded(p, present)

    def predict_many(self, X: Floats) -> Floats:
        return guarded_many(self.part.answer_many(np.asarray(X, dtype=np.float64)))

    def score_one(self, x: Mapping[str, float]) -> tuple[float, dict[str, float] | None]:
        """Like :meth:`models.member.Member.predict_with_parts`: the score and stack parts."""
        return self.predict_one(x), None

    def score_many(self, X: Floats) -> tuple[Floats, dict[str, Floats] | None]:
        """Scores and, for a stack, each member's part per row (NaN: member left out)."""
        return self.predict_many(X), None
