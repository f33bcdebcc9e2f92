"""models room: a River logistic regression and its preprocessing as a few float arrays.

The zoo's linear members are ``SignedLog() | StandardScaler() | [sampler] |
LogisticRegression``. At prediction River computes, for each feature ``i`` present in ``x``:
``u = sign(x) log1p(|x|)`` (:class:`models.preprocess.SignedLog`), then
``(u - mean_i) / var_i ** 0.5`` — or ``0.0`` when ``var_i == 0`` (a feature seen once, or
always equal, or never seen) — then ``z = Σ w_i u_i + intercept`` over the features present
(a missing feature contributes nothing), then ``p = sigmoid(z)``, with River's sigmoid
answering exactly 0 below ``z = -30`` and 1 above ``+30``. A feature with variance 0 or
weight 0 contributes exactly 0 whatever its value, so the plan leaves it out. A sampler
(``RandomUnderSampler``) only chooses what the regression learns; prediction passes through.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.plans.base import Answers, Floats


def river_sigmoid(z: float) -> float:
    """``river.utils.math.sigmoid``: clamped to exactly 0 / 1 beyond ±30."""
    if z < -30:
        return 0.0
    if z > 30:
        return 1.0
    return 1.0 / (1.0 + math.exp(-z))


def signed_log_many(X: Floats) -> Floats:
    """:func:`models.preprocess.signed_log` of every cell (NaN stays NaN)."""
    result: Floats = np.copysign(np.log1p(np.abs(X)), X)
    return result


@dataclass(frozen=True)
class LinearPart:
    """``sigmoid(Σ w ((g(x) - mean) / scale) + intercept)``, ``g`` the signed log or identity."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    intercept: float
    signed_log: bool
    _columns: Floats = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # rows: weight, mean, scale (read-only: a plan never changes)
        columns = np.array([self.weights, self.means, self.scales], dtype=np.float64)
        columns.flags.writeable = False
        object.__setattr__(self, "_columns", columns.reshape(3, len(self.features)))

    def answer_one(self, x: Mapping[str, float]) -> tuple[float, bool]:
        z = 0.0
        # plain floats (tuples): a numpy scalar per feature costs more than the arithmetic
        for name, w, m, s in zip(self.features, self.weights, self.means, self.scales, strict=True):
            value = x.get(name)
            if value is not None:
                if self.signed_log:
                    value = math.copysign(math.log1p(abs(value)), value)
                z += w * ((value - m) / s)
        return river_sigmoid(z + self.intercept), True

    def answer_many(self, X: Floats) -> Answers:
        w, m, s = self._columns
        u = signed_log_many(X) if self.signed_log else X
        scaled = (u - m) / s
        z = np.where(np.isnan(scaled), 0.0, scaled) @ w + self.intercept
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-z))
        p = np.where(z < -30, 0.0, np.where(z > 30, 1.0, p))
        n = len(X)
        return Answers(p, np.ones(n, dtype=np.bool_), np.zeros(n, dtype=np.bool_))


def compile_linear(regression: Any, signed_log: bool, scaler: Any | None) -> LinearPart | None:
    """The part of ``[SignedLog] | [StandardScaler] | LogisticRegression``; None if unusual."""
    if scaler is not None and getattr(scaler, "window_size", None) is not None:
        return None  # rolling statistics: not folded (no zoo model uses them)
    weights: dict[str, float] = regression.weights
    rows = []
    for name, w in weights.items():
        if not isinstance(name, str) or w == 0.0:
            continue
        mean, scale = 0.0, 1.0
        if scaler is not None:
            mean = float(scaler.means.get(name, 0.0))
            if scaler.with_std:
                var = float(scaler.vars.get(name, 0.0))
                if not var:
                    continue  # River answers exactly 0.0 for this feature
                scale = var**0.5  # as River computes it (not np.sqrt)
        rows.append((name, float(w), mean, scale))
    return LinearPart(
        features=tuple(r[0] for r in rows),
        weights=tuple(r[1] for r in rows),
        means=tuple(r[2] for r in rows),
        scales=tuple(r[3] for r in rows),
        intercept=float(regression.intercept),
        signed_log=signed_log,
    )
