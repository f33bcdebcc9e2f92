"""One model of the pool with everything it has learned, and the records the pool returns.

A :class:`Member` is what a snapshot stores: the River model, its rolling quality, its drift
monitor, the running feature means used to explain it, and its counters. The spec (the
factory, which is code) is not pickled; it is re-attached from the zoo on restore.

>>> m = Member.fresh(zoo.ZOO["logreg"], window=100, thresholds=Thresholds())
>>> m.predict({"amount": 3.0}), m.version
(0.5, '2.0')
>>> m.learn({"amount": 3.0}, True); m.version, m.learned
('2.1', 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from models import booster, explain, guard, zoo
from models.drift import DriftMonitor
from models.metrics import RollingQuality

Role = Literal["champion", "challenger"]


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds on the champion's score: review, then decline."""

    review: float = 0.5
    decline: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.decline <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= review <= decline <= 1")


@dataclass(frozen=True)
class ModelScore:
    """A model's score for one transaction; ``fallback`` when the model failed."""

    name: str
    version: str
    score: float
    role: Role
    fallback: bool = False
    #: member scores of a stacked model (store them with the score; pass them back to learn)
    parts: dict[str, float] | None = None


@dataclass(frozen=True)
class PromotionRecord:
    """Who replaced whom, when, why, and both models' metrics at that moment."""

    from_model: str
    to_model: str
    at: datetime
    reason: str
    automatic: bool
    metrics_from: dict[str, Any]
    metrics_to: dict[str, Any]


@dataclass
class Member:
    """A model with its learned state, quality and drift monitors, and fault counters."""

    spec: zoo.ModelSpec
    model: Any
    quality: RollingQuality
    drift: DriftMonitor = field(default_factory=DriftMonitor)
    baseline: explain.FeatureBaseline = field(default_factory=explain.FeatureBaseline)
    learned: int = 0
    frauds: int = 0  # fraud labels among those learned
    predict_errors: int = 0  # predict_proba_one raised
    invalid_outputs: int = 0  # it answered, but not a probability (NaN, out of range, ...)
    learn_errors: int = 0  # learn_one raised (the label is still counted as seen)

    @classmethod
    def fresh(cls, spec: zoo.ModelSpec, window: int, thresholds: Thresholds) -> Member:
        quality = RollingQuality(window, thresholds.review, thresholds.decline)
        return cls(spec=spec, model=spec.factory(), quality=quality)

    @property
    def version(self) -> str:
        """Definition version and labels learned: changes with every learned label."""
        return f"{self.spec.version}.{self.learned}"

    @property
    def errors(self) -> int:
        return self.predict_errors + self.invalid_outputs + self.learn_errors

    def predict(self, x: dict[str, float]) -> float | None:
        """P(fraud), or None (counted) when the model raises or answers garbage."""
        try:
            answer = self.model.predict_proba_one(x)
        except Exception:  # a model bug costs its own score, never the request
            self.predict_errors += 1
            return None
        value = guard.probability(answer)
        if value is None:
            self.invalid_outputs += 1
        return value

    def predict_with_parts(
        self, x: dict[str, float]
    ) -> tuple[float | None, dict[str, float] | None]:
        """P(fraud) and, for a stacked model, the member scores it was combined from."""
        parts_of = getattr(self.model, "predict_parts", None)
        if parts_of is None:
            return self.predict(x), None
        try:
            parts = parts_of(x)
            answer = self.model.combine(parts)
        except Exception:
            self.predict_errors += 1
            return None, None
        value = guard.probability({True: answer})
        if value is None:
            self.invalid_outputs += 1
        return value, parts

    def learn(
        self,
        x: dict[str, float],
        label: bool,
        parts: Mapping[str, float] | None = None,
        at: float | None = None,
    ) -> None:
        """Learn one label; a stack takes the member scores stored at scoring time."""
        try:
            if hasattr(self.model, "predict_parts"):  # a stack (parts None: it falls back)
                self.model.learn_one(x, label, parts=parts, t=at)
            elif at is not None and getattr(self.model, "accepts_time", False):
                self.model.learn_one(x, label, t=at)
            else:
                self.model.learn_one(x, label)
        except Exception:
            self.learn_errors += 1
        self.learned += 1
        self.frauds += bool(label)
        self.baseline.update(x)

    def settle(self) -> bool:
        """Between labels: a model with background fits publishes a finished one (see
        :meth:`models.booster.WindowedBooster.settle`); True when the model changed."""
        settle = getattr(self.model, "settle", None)
        if settle is None:
            return False
        try:
            return bool(settle())
        except Exception:  # a fit that cannot be published keeps the previous model
            self.learn_errors += 1
            return False

    def window(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], Any]:
        """(tags, labels, scores) of the rolling window, for the promotion policy."""
        y, s = self.quality.arrays()
        return self.quality.tags(), y, s

    def last_tag(self) -> int:
        tags = self.quality.tags()
        return int(tags.max()) if len(tags) else -1

    def status(self, role: Role, pool_guard: dict[str, int]) -> dict[str, Any]:
        metrics = self.quality.snapshot()
        drift = self.drift.state()
        return {
            "name": self.spec.name,
            "role": role,
            "version": self.version,
            "description": self.spec.description,
            "learned": self.learned,
            "labels": metrics["labels"],
            "roc_auc": metrics["roc_auc"],
            "average_precision": metrics["average_precision"],
            "log_loss": metrics["log_loss"],
            "confusion": metrics["confusion"],
            "metrics": metrics,
            "drift": drift,
            "drift_detected": drift["drifts"],
            "in_drift": 1 if drift["in_drift"] else 0,
            "errors": self.errors,
            "booster": booster.state_of(self.model),
            "guard": {
                **pool_guard,
                "predict_errors": self.predict_errors,
                "invalid_outputs": self.invalid_outputs,
                "learn_errors": self.learn_errors,
            },
        }
