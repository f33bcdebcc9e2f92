"""models room: plans of the zoo's composite models — blend, windowed booster, stack.

* :class:`models.ensemble.Blend`: both members answer; if either answer is empty the other
  one is the blend's answer (``dict(first or second)``), else the weighted mean of their
  P(True), or of their clipped log-odds through a sigmoid (``on="logit"``).
* :class:`models.booster.WindowedBooster`: LightGBM trees are evaluated by LightGBM itself,
  from the model text the booster pickles (``model_to_string``, kept zlib-compressed: ~1 MB
  of text for 400 trees), loaded once per plan. A numpy
  re-implementation of 400 trees would be slower than LightGBM's C++ for a batch and would
  have to mirror its missing-value and zero-threshold rules; LightGBM's own predict is exact
  by construction. Before its first fit the booster abstains and answers its fraud share.
* :class:`models.stack.Stack`: each non-abstaining member's P(True) (the *parts* the pool
  stores with the score), corrected and mixed with the experts' weights (the meta-learner's
  averaged weights, the fixed combination, the members alone) and the mixture's weights
  frozen at compile time, by :mod:`models.stack`'s own ``inputs_of`` and ``mix`` (row by
  row: the very same float operations; a batch: numpy, within rounding).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.plans.base import Answers, Floats, Index, Part, Plan, union
from models.stack import CLIP, inputs_of, logit, mix

EPS = 1e-6  # models.ensemble.EPS


def _logit_many(p: Floats, eps: float) -> Floats:
    q = np.clip(p, eps, 1.0 - eps)
    out: Floats = np.log(q / (1.0 - q))
    return out


@dataclass(frozen=True)
class BlendPart:
    first: Part
    second: Part
    weight: float
    on: str
    features: tuple[str, ...] = field(init=False)
    columns: tuple[Index, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names, columns = union([self.first, self.second])
        object.__setattr__(self, "features", names)
        object.__setattr__(self, "columns", columns)

    def answer_one(self, x: Mapping[str, float]) -> tuple[float, bool]:
        a, has_a = self.first.answer_one(x)
        b, has_b = self.second.answer_one(x)
        if not has_a or not has_b:
            return (a, True) if has_a else (b, has_b)
        w = self.weight
        if self.on == "probability":
            return w * a + (1.0 - w) * b, True
        z = w * _logit(a) + (1.0 - w) * _logit(b)
        return 1.0 / (1.0 + math.exp(-z)), True

    def answer_many(self, X: Floats) -> Answers:
        one = self.first.answer_many(X[:, self.columns[0]])
        two = self.second.answer_many(X[:, self.columns[1]])
        w = self.weight
        if self.on == "probability":
            mixed = w * one.p + (1.0 - w) * two.p
        else:
            z = w * _logit_many(one.p, EPS) + (1.0 - w) * _logit_many(two.p, EPS)
            mixed = 1.0 / (1.0 + np.exp(-z))
        both = one.present & two.present
        p = np.where(both, mixed, np.where(one.present, one.p, two.p))
        return Answers(p, one.present | two.present, one.failed | two.failed)


def _logit(p: float) -> float:
    p = min(max(p, EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class BoosterPart:
    """LightGBM's predict on the booster's published model; its fraud share while it abstains."""

    features: tuple[str, ...]
    text: bytes | None  # the model text, zlib-compressed (~1 MB raw for 400 trees); None: abstains
    prior: float
    _model: list[Any] = field(default_factory=list, repr=False, compare=False)

    @property
    def abstains(self) -> bool:
        return self.text is None

    def _booster(self) -> Any:
        if not self._model:  # loaded once, on first use (the text is what pickles)
            import lightgbm

            text = zlib.decompress(self.text or b"").decode()
            self._model.append(lightgbm.Booster(model_str=text))
        return self._model[0]

    def answer_one(self, x: Mapping[str, float]) -> tuple[float, bool]:
        if self.text is None:
            return self.prior, True
        row = np.array([[x.get(n, math.nan) for n in self.features]], dtype=np.float64)
        return float(self._booster().predict(row, num_threads=1)[0]), True

    def answer_many(self, X: Floats) -> Answers:
        n = len(X)
        if self.text is None or n == 0:
            p = np.full(n, self.prior)
        else:
            p = np.asarray(self._booster().predict(X, num_threads=1), dtype=np.float64)
        return Answers(p, np.ones(n, dtype=np.bool_), np.zeros(n, dtype=np.bool_))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": []}


def compile_booster(model: Any) -> BoosterPart:
    booster = model._model
    text = None if booster is None else zlib.compress(booster.model_to_string().encode(), 6)
    return BoosterPart(tuple(model._model_names), text, float(model.prior()))


@dataclass(frozen=True)
class StackPart:
    """Members (name, part, abstains), their fraud shares, and the experts' weights frozen."""

    names: tuple[str, ...]
    members: tuple[Part, ...]
    abstains: tuple[bool, ...]
    shares: tuple[float | None, ...]
    prior_logit: float
    experts: tuple[tuple[float, ...], ...]  # each expert's weights on [1, inputs]
    needs: tuple[int, ...]  # the member each expert needs present (-1: none)
    mixture: tuple[float, ...]  # the experts' weights in the mean
    features: tuple[str, ...] = field(init=False)
    columns: tuple[Index, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names, columns = union(list(self.members))
        object.__setattr__(self, "features", names)
        object.__setattr__(self, "columns", columns)

    def parts_one(self, x: Mapping[str, float]) -> dict[str, float]:
        """``Stack.predict_parts``: each non-abstaining member with a non-empty answer."""
        parts = {}
        for name, member, abstains in zip(self.names, self.members, self.abstains, strict=True):
            if not abstains:
                p, present = member.answer_one(x)
                if present:
                    parts[name] = float(p)
        return parts

    def combine_one(self, parts: Mapping[str, float]) -> float:
        """``Stack.combine``: the same functions on the same frozen numbers."""
        x = inputs_of(parts, self.names, self.shares, self.prior_logit)
        return mix(x, self.experts, self.needs, self.mixture)

    def answer_one(self, x: Mapping[str, float]) -> tuple[float, bool]:
        return self.combine_one(self.parts_one(x)), True

    def parts_many(self, X: Floats) -> tuple[dict[str, Floats], Answers]:
        """Each member's part per row (NaN: left out) and the combined answers."""
        n = len(X)
        failed = np.zeros(n, dtype=np.bool_)
        parts: dict[str, Floats] = {}
        for name, member, abstains, cols in zip(
            self.names, self.members, self.abstains, self.columns, strict=True
        ):
            if abstains:
                parts[name] = np.full(n, math.nan)
                continue
            answers = member.answer_many(X[:, cols])
            parts[name] = np.where(answers.present, answers.p, math.nan)
            failed |= answers.failed
        inputs, absent = [], []
        for name, share in zip(self.names, self.shares, strict=True):
            p = parts[name]
            missing = ~np.isfinite(p)
            value = _logit_many(np.where(missing, 0.5, p), 1e-6)
            if share is not None:
                value = value + (self.prior_logit - logit(share))
            inputs.append(np.where(missing, 0.0, np.clip(value, -CLIP, CLIP)))
            absent.append(missing)
        flags = [a.astype(np.float64) for a in absent]
        total, norm = np.zeros(n), np.zeros(n)
        for w, need, share in zip(self.experts, self.needs, self.mixture, strict=True):
            z = np.full(n, w[0])
            for wi, column in zip(w[1:], inputs + flags, strict=True):
                z = z + wi * column
            e = np.exp(-np.abs(z))
            p = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
            can = np.ones(n, dtype=np.bool_) if need < 0 else ~absent[need]
            total = total + np.where(can, share * p, 0.0)
            norm = norm + np.where(can, share, 0.0)
        safe = np.where(norm > 0, norm, 1.0)
        mixed = np.where(norm > 0, total / safe, 0.0)
        return parts, Answers(mixed, np.ones(n, dtype=np.bool_), failed)

    def answer_many(self, X: Floats) -> Answers:
        return self.parts_many(X)[1]


@dataclass(frozen=True)
class StackPlan(Plan):
    """A stack's plan: also the member parts the pool stores with the score."""

    part: StackPart

    def score_one(self, x: Mapping[str, float]) -> tuple[float, dict[str, float] | None]:
        from models.plans.base import Failed, guarded

        try:
            parts = self.part.parts_one(x)
        except Failed:
            return math.nan, None
        return guarded(self.part.combine_one(parts), True), parts

    def score_many(self, X: Floats) -> tuple[Floats, dict[str, Floats] | None]:
        from models.plans.base import guarded_many

        parts, answers = self.part.parts_many(np.asarray(X, dtype=np.float64))
        return guarded_many(answers), parts


def compile_stack(model: Any, compile_part: Any) -> StackPart | None:
    """A :class:`models.stack.Stack` whose members all compile; else None."""
    members, abstains = [], []
    for member in model.members.values():
        part = compile_part(member)
        if part is None:
            return None
        members.append(part)
        abstains.append(bool(getattr(member, "abstains", lambda: False)()))
    shares = model.fraud_shares or {}
    experts, needs, mixture = model.expert_weights()
    return StackPart(
        names=tuple(model._names),
        members=tuple(members),
        abstains=tuple(abstains),
        shares=tuple(shares.get(name) for name in model._names),
        prior_logit=logit(model.prior()),
        experts=tuple(tuple(w) for w in experts),
        needs=tuple(needs),
        mixture=tuple(mixture),
    )
