"""The stacked champion: an online logistic meta-learner over its members' log-odds.

Averaging the probabilities of members trained at different class priors changes the ranking
(an under-sampled member's odds are ~10x too high, so it dominates the mean). The stack
instead:

1. corrects each member's probability to the live fraud prior: a member trained on a stream
   re-balanced to fraud share ``s`` has its odds multiplied by ``(π / (1 - π)) / (s / (1 - s))``
   where ``π`` is the running fraud share of the labels (members on every label: no change);
2. feeds the corrected log-odds (clipped to ±:data:`CLIP`), plus one indicator per member
   that abstained (the windowed booster before its first fit), to :class:`OnlineLogit`;
3. learns the meta-learner, when the label arrives, **from the member scores emitted when the
   transaction was scored** (``parts``), not from the members' current opinion of it: those
   have learned days of labels since, and a meta-learner fitted on them would trust members
   for how they score old transactions, not new ones. The pool passes the stored parts
   (:meth:`models.pool.ModelPool.learn`); without them the stack falls back to the members'
   scores just before they learn the label (documented bias, counted in ``fallbacks``).

The meta-learner's output is a calibrated P(fraud) on live traffic: a logistic regression
fitted by (forgetful) maximum likelihood on the live label stream is calibrated in the large
by construction and, over a handful of monotone inputs, across the score range
(``bench/models.py`` reports the expected calibration error).

>>> from river import linear_model
>>> stack = Stack({"a": linear_model.LogisticRegression(), "b": linear_model.LogisticRegression()})
>>> stack.predict_parts({"x": 1.0})
{'a': 0.5, 'b': 0.5}
>>> parts = stack.predict_parts({"x": 2.0})
>>> stack.learn_one({"x": 2.0}, True, parts=parts)
>>> stack.fallbacks, stack.labels
(0, 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from river import base, linear_model

#: Member log-odds are clipped to this magnitude (a member that is certain must not dominate).
CLIP = 9.0
EPS = 1e-6


def logit(p: float) -> float:
    p = min(max(p, EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def inputs_of(
    parts: Mapping[str, float],
    names: Sequence[str],
    shares: Sequence[float | None],
    prior_logit: float,
) -> list[float]:
    """Prior-corrected clipped log-odds of each named member, then one absence flag each."""
    z, absent = [], []
    for name, share in zip(names, shares, strict=True):
        p = parts.get(name)
        if p is None or not math.isfinite(p):
            z.append(0.0)
            absent.append(1.0)
            continue
        value = logit(p)
        if share is not None:
            value += prior_logit - logit(share)
        z.append(min(max(value, -CLIP), CLIP))
        absent.append(0.0)
    return z + absent


def mix(
    x: Sequence[float],
    experts: Sequence[Sequence[float]],
    needs: Sequence[int],
    weights: Sequence[float],
) -> float:
    """The weighted mean of the experts' probabilities, over the experts that can answer.

    Expert ``k`` answers ``sigmoid(experts[k][0] + experts[k][1:] · x)``; one that needs
    member ``needs[k]`` (-1: none) is left out, and the weights renormalised, when that
    member is absent from ``x`` (its flag, ``x[n + needs[k]]``, is 1).
    """
    n = len(x) // 2
    total = norm = 0.0
    for w, need, share in zip(experts, needs, weights, strict=True):
        if need >= 0 and x[n + need] == 1.0:
            continue
        z = w[0]
        for wi, xi in zip(w[1:], x, strict=True):
            z += wi * xi
        total += share * sigmoid(z)
        norm += share
    return total / norm if norm > 0 else 0.0


class OnlineLogit:
    """Logistic regression by online Newton steps with exponential forgetting.

    Keeps ``H = β H + p (1 - p) x xᵀ + (1 - β) λ I`` and steps ``w += H⁻¹ x (y - p)``: a
    recursive IRLS (an extended Kalman filter of the weights). On a few inputs it converges in
    hundreds of labels, where SGD needs a learning rate tuned to the inputs' scale, and
    ``β = 1 - 1 / memory`` lets it follow the members as they improve.

    Predictions use the *averaged* weights (Polyak–Ruppert; a running mean of the iterates,
    exponential over the last ``average`` labels): the Newton iterates themselves swing with
    the order labels arrive in (fraud confirmations come early, genuine ones late), and a
    score whose scale swings from week to week ranks badly when pooled over weeks. Replayed
    on the stored member scores of three streams (second-half AP, simulator 10 days /
    handbook 30 days / handbook 60 days): last iterate 0.25 / 0.29 / 0.55, averaged over
    10,000 labels 0.52 / 0.45 / 0.55, over 50,000 labels with 100,000 labels of memory
    (the zoo's ``stack``) 0.52 / 0.45 / 0.61; best single member 0.50 / 0.34 / 0.66.

    >>> m = OnlineLogit(2, init=[0.0, 1.0], bias=-4.0)
    >>> round(m.predict([0.0, 0.0]), 4)
    0.018
    """

    def __init__(
        self,
        width: int,
        init: list[float] | None = None,
        bias: float = 0.0,
        memory: float = 50_000.0,
        l2: float = 1.0,
        average: float = 10_000.0,
    ) -> None:
        self.w: npt.NDArray[np.float64] = np.array([bias, *(init or [0.0] * width)], float)
        self.avg = self.w.copy()
        self.average = average
        self.steps = 0
        self.beta = 1.0 - 1.0 / memory
        self.l2 = l2
        self.h: npt.NDArray[np.float64] = np.eye(width + 1) * l2

    def z(self, x: list[float]) -> float:
        w = self.avg
        return float(w[0] + sum(w[i + 1] * v for i, v in enumerate(x)))

    def predict(self, x: list[float]) -> float:
        return sigmoid(self.z(x))

    def learn(self, x: list[float], y: bool) -> None:
        v = np.array([1.0, *x])
        p = sigmoid(float(self.w @ v))
        curvature = max(p * (1.0 - p), 1e-4)
        self.h *= self.beta
        self.h += curvature * np.outer(v, v)
        self.h[np.diag_indices_from(self.h)] += (1.0 - self.beta) * self.l2
        self.w += np.linalg.solve(self.h, v * (float(y) - p))
        self.steps += 1
        self.avg += (self.w - self.avg) / min(self.steps, self.average)


class Stack(base.Classifier):
    """Online stacking of named members; learns from the member scores given at scoring time.

    The score is a mixture of *experts*, each a logistic function of the meta-learner's
    inputs: the meta-learner itself, an optional ``fixed`` combination, and each member
    alone (prior-corrected; left out while that member abstains). Each expert's weight is
    ``exp(-eta · L)`` where ``L`` is its prequential log-loss on the labels learned, forgetting
    with ``1 - 1 / mix_memory`` (exponentially weighted averaging; an absent expert is charged
    the meta-learner's loss). So the stack starts as the mean of its experts, follows the
    best of them while the meta-learner has seen few labels, and moves to the meta-learner
    once (and as long as) it predicts the labels better.

    Parameters
    ----------
    members
        Named binary River classifiers (or pipelines ending in one); all learn every label.
    fraud_shares
        For a member trained on a re-balanced stream, the fraud share it was trained at (its
        probabilities are corrected to the live prior); members not named: the live stream.
    memory
        Labels of memory of the meta-learner (forgetting factor ``1 - 1 / memory``).
    average
        Labels over which the meta-learner's weights are averaged for scoring.
    fixed
        A fixed combination: weights on the members' corrected log-odds by name, and an
        intercept under ``"bias"``; None: no prior expert.
    mix_memory, eta
        Memory (labels) and learning rate of the experts' weights; ``eta=0``: equal weights.
    experts
        False: the meta-learner alone (the stack before the mixture).
    handover
        Frauds learned after which the meta-learner alone scores (None: the mixture always).
    """

    def __init__(
        self,
        members: dict[str, Any],
        fraud_shares: dict[str, float] | None = None,
        memory: float = 20_000.0,
        average: float = 10_000.0,
        fixed: dict[str, float] | None = None,
        mix_memory: float = 20_000.0,
        eta: float = 1.0,
        experts: bool = True,
        handover: int | None = None,
    ) -> None:
        self.members = members
        self.fraud_shares = fraud_shares
        self.memory = memory
        self.average = average
        self.fixed = fixed
        self.mix_memory = mix_memory
        self.eta = eta
        self.experts = experts
        self.handover = handover
        self._names = list(members)
        n = len(self._names)
        # start as the mean log-odds at a 1% prior; the meta-learner moves from there
        start = [1.0 / n] * n + [0.0] * n
        self.meta = OnlineLogit(2 * n, init=start, memory=memory, average=average)
        self._needs = [-1] + ([-1] if fixed is not None else []) + list(range(n) if experts else [])
        self._fixed = self._fixed_experts()
        self.losses = [0.0] * len(self._needs)
        self.weights = [1.0] * len(self._needs)
        self.labels = 0
        self.frauds = 0
        self.fallbacks = 0

    @property
    def _multiclass(self) -> bool:
        return False

    def _fixed_experts(self) -> list[list[float]]:
        """The prior and the members alone, as weights on ``[1, inputs]``."""
        n = len(self._names)
        fixed = []
        if self.fixed is not None:
            bias = float(self.fixed.get("bias", 0.0))
            weights = [float(self.fixed.get(m, 0.0)) for m in self._names]
            fixed.append([bias, *weights, *[0.0] * n])
        if self.experts:
            for i in range(n):
                one = [0.0] * (2 * n + 1)
                one[1 + i] = 1.0
                fixed.append(one)
        return fixed

    def expert_weights(self) -> tuple[list[list[float]], list[int], list[float]]:
        """Every expert's weights on ``[1, inputs]``, the member it needs, its mixture weight."""
        meta = [float(w) for w in self.meta.avg]
        weights = list(self.weights)
        if self.handover is not None and self.frauds >= self.handover:
            weights = [1.0] + [0.0] * (len(weights) - 1)
        return [meta, *self._fixed], list(self._needs), weights

    def prior(self) -> float:
        return (self.frauds + 1.0) / (self.labels + 100.0)

    # ---- the members ---------------------------------------------------------------------
    def predict_parts(self, x: dict[Any, Any]) -> dict[str, float]:
        """Each member's raw P(fraud); an abstaining member is left out. Store these."""
        parts = {}
        for name, model in self.members.items():
            abstains = getattr(model, "abstains", None)
            if abstains is not None and abstains():
                continue
            answer = model.predict_proba_one(x)
            if answer:
                parts[name] = float(answer.get(True, 0.0))
        return parts

    def inputs(self, parts: Mapping[str, float]) -> list[float]:
        """The meta-learner's inputs: prior-corrected clipped log-odds, then abstentions."""
        shares = self.fraud_shares or {}
        return inputs_of(
            parts, self._names, [shares.get(n) for n in self._names], logit(self.prior())
        )

    def combine(self, parts: Mapping[str, float]) -> float:
        """The champion's score for these member scores."""
        return mix(self.inputs(parts), *self.expert_weights())

    def learn_meta(self, parts: Mapping[str, float], label: bool) -> None:
        """Learn the combination alone from one label's stored member scores."""
        x = self.inputs(parts)
        if len(self.weights) > 1:
            self._judge(x, label)
        self.meta.learn(x, label)
        self.labels += 1
        self.frauds += label

    def _judge(self, x: list[float], label: bool) -> None:
        """Charge every expert its log-loss on this label; reweigh them."""
        experts, needs, _ = self.expert_weights()
        n = len(self._names)
        beta = 1.0 - 1.0 / self.mix_memory
        charged: list[float | None] = []
        for w, need in zip(experts, needs, strict=True):
            if need >= 0 and x[n + need] == 1.0:
                charged.append(None)
                continue
            p = mix(x, [w], [-1], [1.0])
            p = min(max(p if label else 1.0 - p, EPS), 1.0)
            charged.append(-math.log(p))
        meta_loss = charged[0] if charged[0] is not None else 0.0
        self.losses = [
            beta * old + (meta_loss if c is None else c)
            for old, c in zip(self.losses, charged, strict=True)
        ]
        best = min(self.losses)
        self.weights = [math.exp(-self.eta * (loss - best)) for loss in self.losses]

    # ---- River API -----------------------------------------------------------------------
    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> dict[Any, float]:
        p = self.combine(self.predict_parts(x))
        return {False: 1.0 - p, True: p}

    def predict_one(self, x: dict[Any, Any], **kwargs: Any) -> bool:
        return self.predict_proba_one(x)[True] > 0.5

    def learn_one(
        self,
        x: dict[Any, Any],
        y: Any,
        parts: Mapping[str, float] | None = None,
        t: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Learn the meta-learner from ``parts`` (stored at scoring time), then the members."""
        label = bool(y)
        if parts is None:
            self.fallbacks += 1
            parts = self.predict_parts(x)
        self.learn_meta(parts, label)
        for model in self.members.values():
            if t is not None and getattr(model, "accepts_time", False):
                model.learn_one(x, y, t=t)
            else:
                model.learn_one(x, y)

    def wait(self) -> None:
        """Publish any member fit in flight (benchmarks, tests)."""
        for model in self.members.values():
            wait = getattr(model, "wait", None)
            if wait is not None:
                wait()

    def settle(self) -> bool:
        """Between labels: let members publish finished fits (see
        :meth:`models.booster.WindowedBooster.settle`); True if one changed."""
        changed = False
        for model in self.members.values():
            settle = getattr(model, "settle", None)
            if settle is not None:
                changed |= bool(settle())
        return changed

    def _unit_test_skips(self) -> set[str]:
        """The members' own skips (an ARF's feature subsets depend on feature order)."""
        skips: set[str] = set()
        for model in self.members.values():
            skips |= set(model._unit_test_skips())
        return skips

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {
            "members": {
                "a": linear_model.LogisticRegression(),
                "b": linear_model.LogisticRegression(l2=0.1),
            }
        }
