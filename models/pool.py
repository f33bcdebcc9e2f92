"""Champion and challengers: every model scores every transaction; the champion decides.

River models are not thread-safe, and neither is the pool: one owner task in the service
mutates it (``learn``, ``promote``, ``restore``, ``reset``), and scoring
runs on the same event loop between those calls, never concurrently from threads. The one
exception reads: while the owner task waits, a worker thread may pickle :meth:`snapshot`
(scoring a trained model reads it and changes nothing a snapshot holds).

Inputs pass :func:`guard.clean_features` first, outputs :func:`guard.probability`, so a NaN
can never poison a model and a broken model can never break a request: its score falls back
to ``fallback_score`` (0.0, "no evidence") and the fault is counted per model.

>>> pool = ModelPool([zoo.ZOO["logreg"], zoo.ZOO["hat"]], champion="logreg")
>>> [(s.name, s.role, s.score) for s in pool.score({"amount": 10.0})]
[('logreg', 'champion', 0.5), ('hat', 'challenger', 0.0)]
>>> pool.learn({"amount": 10.0}, False, {"logreg": 0.5, "hat": 0.0})
>>> pool.decide(0.95), pool.version_of("logreg")
('decline', '2.1')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from models import explain, guard, planned, zoo
from models.member import Member, ModelScore, PromotionRecord, Role, Thresholds
from models.plans import Plan
from models.policy import PolicyDecision, PromotionPolicy, decide

__all__ = [
    "AlreadyChampion",
    "Member",
    "ModelPool",
    "ModelScore",
    "PolicyDecision",
    "PromotionPolicy",
    "PromotionRecord",
    "Reason",
    "Thresholds",
    "UnknownModel",
]

Decision = Literal["approve", "review", "decline"]
Reason = explain.Reason


class UnknownModel(KeyError):
    """No model of that name in the pool."""


class AlreadyChampion(ValueError):
    """The model named is the champion already."""


class ModelPool:
    """Score with all, decide with the champion, learn each label once in every model.

    Parameters
    ----------
    specs
        The models, from :data:`models.zoo.ZOO` (champion and challengers).
    champion
        Name of the model whose score decides.
    thresholds
        ``score >= decline`` declines, ``score >= review`` sends to review.
    metrics_window
        Labels covered by each model's rolling metrics (and by the promotion policy).
    policy
        Automatic promotion policy (disabled by default).
    fallback_score
        Score reported for a model that raised or returned garbage (counted in ``status``).
    """

    #: smaller batches are scored row by row: a plan's scalar loop beats numpy's per-call
    #: overhead below ~8 rows (default lineup, trained: 1 row 43 µs scalar, 270 µs as a matrix)
    batch_from = 8

    def __init__(
        self,
        specs: Sequence[zoo.ModelSpec],
        champion: str,
        thresholds: Thresholds | None = None,
        metrics_window: int = 10_000,
        policy: PromotionPolicy | None = None,
        fallback_score: float = 0.0,
    ) -> None:
        if not specs:
            raise ValueError("a pool needs at least one model")
        if not 0.0 <= fallback_score <= 1.0:
            raise ValueError("fallback_score must be a probability")
        self.thresholds = thresholds or Thresholds()
        self.metrics_window = metrics_window
        self.policy = policy or PromotionPolicy()
        self.fallback_score = fallback_score
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
        self.dropped = 0  # feature values dropped by the guard (not finite, not numbers)
        self.clipped = 0  # finite values clipped to ±guard.MAX_ABS_VALUE
        self._label_seq = 0
        self._installed: planned.Installed | None = None

    def install_plans(self, compiled: Mapping[str, Plan | None]) -> None:
        """Score with these plans (:func:`models.plans.for_pool` of this very pool) from now on.

        A plan is a frozen copy of its member: ``learn``, ``restore`` and ``reset`` drop every
        plan, so a pool that learns (the leader) always scores with its River objects.
        """
        usable = any(plan is not None for plan in compiled.values())
        self._installed = planned.Installed.of(compiled) if usable else None

    def plans(self) -> dict[str, Plan | None]:
        """The installed plans by member name (empty: every member scores with River)."""
        return dict(self._installed.plans) if self._installed is not None else {}

    def _plan(self, name: str) -> Plan | None:
        return self._installed.plan(name) if self._installed is not None else None

    @property
    def guarded(self) -> int:
        """Feature values the guard kept away from the models (dropped or clipped)."""
        return self.dropped + self.clipped

    def _fresh(self, spec: zoo.ModelSpec) -> Member:
        return Member.fresh(spec, self.metrics_window, self.thresholds)

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
        """Every model's P(fraud), champion first; always finite, in [0, 1]."""
        x = self._clean(features)
        return [self._score_one(name, x) for name in self.names()]

    def score_champion(self, features: Mapping[str, object]) -> float:
        """The champion's P(fraud) alone (cheaper than :meth:`score` when that is all)."""
        return self._score_one(self.champion, self._clean(features)).score

    def score_many(self, rows: Sequence[Mapping[str, object]]) -> list[list[ModelScore]]:
        """:meth:`score` of every row; each installed plan runs once over the whole batch."""
        installed, names = self._installed, self.names()
        if installed is None or len(rows) < self.batch_from:
            return [self.score(row) for row in rows]
        fast, xs = None, []
        if all(installed.plan(name) is not None for name in names):
            fast = installed.guarded_matrix(rows)  # no River object needs the dicts
        if fast is None:
            xs = [self._clean(row) for row in rows]
            X = installed.matrix(xs)
        else:
            X, self.dropped, self.clipped = (
                fast.X,
                self.dropped + fast.dropped,
                self.clipped + fast.clipped,
            )
        by_model = [
            planned.column(
                name, self.members[name], self.role_of(name), installed, X, self.fallback_score
            )
            if installed.plan(name) is not None
            else [self._score_one(name, x) for x in xs]
            for name in names
        ]
        return [list(row) for row in zip(*by_model, strict=True)]

    def _score_one(self, name: str, x: dict[str, float]) -> ModelScore:
        member = self.members[name]
        plan = self._plan(name)
        if plan is None:
            value, parts = member.predict_with_parts(x)
        else:
            value, parts = planned.checked(member, *plan.score_one(x))
        fallback = value is None
        score = self.fallback_score if value is None else value
        return ModelScore(name, member.version, score, self.role_of(name), fallback, parts)

    def decide(self, score: float) -> Decision:
        if score >= self.thresholds.decline:
            return "decline"
        if score >= self.thresholds.review:
            return "review"
        return "approve"

    def _clean(self, features: Mapping[str, object]) -> dict[str, float]:
        clean = guard.clean_features(features)
        self.dropped += clean.dropped
        self.clipped += clean.clipped
        return clean.values

    # ---- learning ------------------------------------------------------------------
    def learn(
        self,
        features: Mapping[str, object],
        is_fraud: bool,
        scored: Mapping[str, float],
        parts: Mapping[str, Mapping[str, float]] | None = None,
        at: float | None = None,
    ) -> None:
        """Learn one label in every model, exactly once.

        First each model's metrics take the score *that model* gave at scoring time
        (``scored[name]``; a model absent from ``scored`` is not judged on this label), then
        every model learns, then the drift detectors see the error of the scoring-time score.

        ``parts[name]`` are the member scores a stacked model gave at scoring time
        (:attr:`ModelScore.parts`, stored with the score): its meta-learner learns from them.
        ``at`` is the label's time (epoch seconds): windowed members forget by it.
        """
        x = self._clean(features)
        self._installed = None  # the plans are copies of the models before this label
        label, tag = bool(is_fraud), self._label_seq
        self._label_seq += 1
        judged = {}
        for name, value in scored.items():
            if name in self.members and _is_probability(value):
                judged[name] = float(value)
                self.members[name].quality.update(label, float(value), tag)
        stored = parts or {}
        for name, member in self.members.items():
            member.learn(x, label, stored.get(name), at)
        for name, value in judged.items():
            self.members[name].drift.update(label, value)

    def settle(self) -> list[str]:
        """Between labels (the owner is idle): each model publishes a background fit that
        has finished; the names of the models that changed (their next bundle differs)."""
        changed = [name for name, member in self.members.items() if member.settle()]
        if changed:
            self._installed = None  # the plans are copies of the models before the fit
        return changed

    # ---- explanations ----------------------------------------------------------------
    def explain(
        self, features: Mapping[str, object], top: int = 3, candidates: int = 8
    ) -> list[Reason]:
        """The features that raised the champion's score most (see :mod:`models.explain`)."""
        x = self._clean(features)
        member = self.members[self.champion]
        try:
            linear = explain.linear_reasons(member.model, x, top)
        except Exception:  # an explanation is best-effort; the score stands without it
            member.predict_errors += 1
            linear = None
        if linear is not None:
            return linear
        plan = self._plan(self.champion)
        predict = member.predict if plan is None else planned.predictor(member, plan)
        return explain.perturbation_reasons(predict, x, member.baseline, top, candidates)

    # ---- promotion -------------------------------------------------------------------
    def promote(
        self, name: str, reason: str, automatic: bool = False, at: datetime | None = None
    ) -> PromotionRecord:
        """Make ``name`` the champion; the record keeps both models' metrics at that moment."""
        member = self._member(name)
        if name == self.champion:
            raise AlreadyChampion(name)
        previous = self.champion
        record = PromotionRecord(
            from_model=previous,
            to_model=name,
            at=at or datetime.now(UTC),
            reason=reason,
            automatic=automatic,
            metrics_from=self.members[previous].quality.snapshot(),
            metrics_to=member.quality.snapshot(),
        )
        self.champion = name
        return record

    def evaluate_policy(self, now: datetime | None = None) -> PolicyDecision:
        """Should a challenger replace the champion? Always explained, never applied here."""
        windows = {name: m.window() for name, m in self.members.items()}
        return decide(self.policy, self.champion, windows, at=now)

    # ---- status ----------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        """One row per model, champion first (``GET /v1/models``, Prometheus)."""
        pool_guard = {"dropped_values": self.dropped, "clipped_values": self.clipped}
        return [self.members[name].status(self.role_of(name), pool_guard) for name in self.names()]

    # ---- snapshots -------------------------------------------------------------------
    def snapshot(self, name: str, feature_set: str, last_seq: int) -> bytes:
        """The learned state of ``name`` (model, metrics, drift, baseline) as bytes."""
        from models import snapshot

        return snapshot.dumps(self._member(name), feature_set=feature_set, last_seq=last_seq)

    def restore(self, name: str, blob: bytes, feature_set: str) -> int:
        """Replace ``name`` by its snapshot; return the snapshot's last sequence number.

        Raises :class:`models.snapshot.SnapshotMismatch` (nothing changed) when the snapshot
        was written by other versions, for another feature set or model definition.
        """
        from models import snapshot

        spec = self.specs.get(name)
        if spec is None:
            raise UnknownModel(name)
        member, meta = snapshot.loads(blob, feature_set=feature_set, model=name, spec=spec)
        self.members[name] = member
        self._installed = None  # compiled from the member just replaced
        # later labels must get tags beyond every restored one, so pairs stay aligned
        self._label_seq = max(self._label_seq, member.last_tag() + 1)
        return int(meta["last_seq"])


def _is_probability(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0
