"""Champion and challengers: every model scores every transaction; the champion decides.

River models are not thread-safe. The pool is mutated (``learn``, ``promote``, ``restore``) by
one owner task in the service; ``score`` only reads. Inputs pass :func:`guard.clean_features`
first and outputs :func:`guard.probability`, so a NaN can never poison a model and a broken
model can never break a request: its score falls back to the neutral 0.0 and is counted.

>>> pool = ModelPool([zoo.ZOO["logreg"], zoo.ZOO["hat"]], champion="logreg")
>>> [(s.name, s.role, s.score) for s in pool.score({"amount": 10.0})]
[('logreg', 'champion', 0.5), ('hat', 'challenger', 0.0)]
>>> pool.learn({"amount": 10.0}, False, {"logreg": 0.5, "hat": 0.0})
>>> pool.decide(0.95), pool.version_of("logreg")
('decline', '1.1')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from river import stats

from models import guard, zoo
from models.drift import DriftMonitor
from models.metrics import RollingQuality
from models.policy import PolicyDecision, PromotionPolicy, paired_decision

Role = Literal["champion", "challenger"]
Decision = Literal["approve", "review", "decline"]
NEUTRAL = 0.0


class UnknownModel(KeyError):
    """No model of that name in the pool."""


class AlreadyChampion(ValueError):
    """The model named is the champion already."""


@dataclass(frozen=True)
class Thresholds:
    review: float = 0.5
    decline: float = 0.9


@dataclass(frozen=True)
class ModelScore:
    name: str
    version: str
    score: float
    role: Role


@dataclass(frozen=True)
class Reason:
    code: str
    feature: str
    value: float


@dataclass(frozen=True)
class PromotionRecord:
    from_model: str
    to_model: str
    at: datetime
    reason: str
    automatic: bool
    metrics_from: dict[str, Any]
    metrics_to: dict[str, Any]


@dataclass
class Member:
    """One model with its learned state, quality and drift monitors."""

    spec: zoo.ModelSpec
    model: Any
    quality: RollingQuality
    drift: DriftMonitor = field(default_factory=DriftMonitor)
    learned: int = 0
    errors: int = 0

    @property
    def version(self) -> str:
        return f"{self.spec.version}.{self.learned}"


class ModelPool:
    """Score with all, decide with the champion, learn each label once in every model."""

    def __init__(
        self,
        specs: Sequence[zoo.ModelSpec],
        champion: str,
        thresholds: Thresholds | None = None,
        metrics_window: int = 10_000,
        policy: PromotionPolicy | None = None,
    ) -> None:
        if not specs:
            raise ValueError("a pool needs at least one model")
        self.thresholds = thresholds or Thresholds()
        self.metrics_window = metrics_window
        self.policy = policy or PromotionPolicy()
        self.specs = {spec.name: spec for spec in specs}
        if champion not in self.specs:
            raise UnknownModel(champion)
        self.champion = champion
        self.members: dict[str, Member] = {}
        self.reset()

    # ---- state ---------------------------------------------------------------------
    def reset(self) -> None:
        """Fresh, unfitted models (used when no usable snapshot exists)."""
        self.members = {name: self._fresh(spec) for name, spec in self.specs.items()}
        self.feature_means: dict[str, stats.Mean] = {}
        self.guarded = 0
        self.shared: list[tuple[bool, dict[str, float]]] = []

    def _fresh(self, spec: zoo.ModelSpec) -> Member:
        quality = RollingQuality(
            self.metrics_window, self.thresholds.review, self.thresholds.decline
        )
        return Member(spec=spec, model=spec.factory(), quality=quality)

    def names(self) -> list[str]:
        """Champion first, then challengers in configuration order."""
        return [self.champion, *(n for n in self.members if n != self.champion)]

    def role_of(self, name: str) -> Role:
        return "champion" if name == self.champion else "challenger"

    def version_of(self, name: str) -> str:
        return self._member(name).version

    def _member(self, name: str) -> Member:
        try:
            return self.members[name]
        except KeyError:
            raise UnknownModel(name) from None

    # ---- scoring -------------------------------------------------------------------
    def score(self, features: Mapping[str, object]) -> list[ModelScore]:
        clean = self._clean(features)
        return [self._score_one(name, clean) for name in self.names()]

    def _score_one(self, name: str, x: dict[str, float]) -> ModelScore:
        member = self.members[name]
        try:
            value = guard.probability(member.model.predict_proba_one(x))
        except Exception:  # a model bug costs its own score, never the request
            value = None
        if value is None:
            member.errors += 1
            value = NEUTRAL
        return ModelScore(name, member.version, value, self.role_of(name))

    def decide(self, score: float) -> Decision:
        if score >= self.thresholds.decline:
            return "decline"
        if score >= self.thresholds.review:
            return "review"
        return "approve"

    def _clean(self, features: Mapping[str, object]) -> dict[str, float]:
        clean = guard.clean_features(features)
        self.guarded += clean.dropped + clean.clipped
        return clean.values

    # ---- learning ------------------------------------------------------------------
    def learn(
        self, features: Mapping[str, object], is_fraud: bool, scored: Mapping[str, float]
    ) -> None:
        """Update each model's metrics from ``scored`` (its score at scoring time), then learn."""
        x = self._clean(features)
        label = bool(is_fraud)
        for name, member in self.members.items():
            if name in scored and math.isfinite(scored[name]):
                member.quality.update(label, float(scored[name]))
                member.drift.update(label, float(scored[name]))
            try:
                member.model.learn_one(x, label)
                member.learned += 1
            except Exception:
                member.errors += 1
        if scored and all(name in scored for name in self.members):
            self.shared.append((label, {n: float(scored[n]) for n in self.members}))
            if len(self.shared) > self.metrics_window:
                del self.shared[: len(self.shared) - self.metrics_window]
        for name, value in x.items():
            self.feature_means.setdefault(name, stats.Mean()).update(value)

    # ---- explanations ----------------------------------------------------------------
    def explain(
        self, features: Mapping[str, object], top: int = 3, candidates: int = 8
    ) -> list[Reason]:
        """Top features behind the champion's score, by one-at-a-time perturbation.

        The ``candidates`` features furthest from their running mean are each reset to that
        mean; the drop in the champion's probability is the feature's contribution. Codes are
        ``<feature>_high`` / ``<feature>_low`` (relative to the mean).
        """
        x = self._clean(features)
        member = self.members[self.champion]
        base = self._score_one(self.champion, x).score
        distance = []
        for name, value in x.items():
            mean = self.feature_means.get(name)
            if mean is not None and mean.n > 0:
                distance.append((abs(value - mean.get()) / (abs(mean.get()) + 1.0), name))
        distance.sort(reverse=True)
        contributions = []
        for _, name in distance[:candidates]:
            perturbed = dict(x)
            perturbed[name] = self.feature_means[name].get()
            try:
                changed = guard.probability(member.model.predict_proba_one(perturbed))
            except Exception:
                changed = None
            if changed is not None and base - changed > 0:
                contributions.append((base - changed, name))
        contributions.sort(reverse=True)
        reasons = []
        for _, name in contributions[:top]:
            side = "high" if x[name] >= self.feature_means[name].get() else "low"
            reasons.append(Reason(f"{name}_{side}", name, x[name]))
        return reasons

    # ---- promotion -------------------------------------------------------------------
    def promote(self, name: str, reason: str, automatic: bool = False) -> PromotionRecord:
        member = self._member(name)
        if name == self.champion:
            raise AlreadyChampion(name)
        previous = self.champion
        record = PromotionRecord(
            from_model=previous,
            to_model=name,
            at=datetime.now(UTC),
            reason=reason,
            automatic=automatic,
            metrics_from=self.members[previous].quality.snapshot(),
            metrics_to=member.quality.snapshot(),
        )
        self.champion = name
        return record

    def evaluate_policy(self) -> PolicyDecision:
        """Should a challenger replace the champion? Always explained, never applied here."""
        return paired_decision(self.policy, self.champion, self.shared)

    # ---- status ----------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        rows = []
        for name in self.names():
            member = self.members[name]
            metrics = member.quality.snapshot()
            drift = member.drift.state()
            rows.append(
                {
                    "name": name,
                    "role": self.role_of(name),
                    "version": member.version,
                    "description": member.spec.description,
                    "learned": member.learned,
                    "labels": metrics["labels"],
                    "roc_auc": metrics["roc_auc"],
                    "average_precision": metrics["average_precision"],
                    "log_loss": metrics["log_loss"],
                    "confusion": metrics["confusion"],
                    "metrics": metrics,
                    "drift": drift,
                    "drift_detected": drift["drifts"],
                    "in_drift": 1 if drift["in_drift"] else 0,
                    "errors": member.errors,
                }
            )
        return rows

    # ---- snapshots -------------------------------------------------------------------
    def snapshot(self, name: str, feature_set: str, last_seq: int) -> bytes:
        from models import snapshot

        return snapshot.dumps(self._member(name), feature_set=feature_set, last_seq=last_seq)

    def restore(self, name: str, blob: bytes, feature_set: str) -> int:
        """Replace ``name`` by its snapshot; return the snapshot's last sequence number."""
        from models import snapshot

        member, meta = snapshot.loads(blob, feature_set=feature_set, model=name)
        member.spec = self.specs[name]
        self.members[name] = member
        return int(meta["last_seq"])
