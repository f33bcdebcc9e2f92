"""Bounded memory for River's Hoeffding-tree forests, enforced on a label-count schedule.

River's trees check their size only when the weight they have seen is an exact multiple of
``memory_estimate_period``; in an adaptive random forest every example arrives with a
Poisson weight, so the running weight is a float sum that essentially never hits a multiple
and ``max_size`` is never enforced: the forest grows without bound (``arf_all``: 56 MB after
7,000 labels). :class:`Bounded` wraps a forest and, every ``check_every`` labels, runs each
tree's own size estimate (Kirkby's memory management, as River implements it): over
``max_size`` MiB the least promising leaves are deactivated (they keep predicting from their
class counts but stop collecting split statistics), and reactivated when room returns.
Background trees (grown after a drift warning) count too.

A forest's ``learn_one`` is the learner's dearest call (each of its trees predicts, updates
its drift detectors and its leaf statistics). With ``legit_share < 1`` the forest learns
every fraud and only that share of legitimate labels, each weighted ``1 / legit_share`` so
its leaf frequencies, hence its probabilities, keep the live odds: the weight scales the
forest's Poisson bagging rate (a Poisson(λ / q) draw is the sum of 1 / q Poisson(λ) draws,
exactly the weight the skipped copies would have added). Which legitimate labels are kept
is a function of the features alone (:func:`models.sampling.keep`): a replay of the
learning log, or a learner restored from a checkpoint, learns exactly the same rows.

>>> from river import forest
>>> model = Bounded(forest.ARFClassifier(n_models=2, max_size=0.05, seed=1), check_every=50)
>>> for i in range(400):
...     model.learn_one({"a": float(i % 7), "b": float(i % 3)}, i % 7 == 0)
>>> model.checks
8
>>> sampled = Bounded(forest.ARFClassifier(n_models=2, seed=1), legit_share=0.1)
>>> for i in range(1_000):
...     sampled.learn_one({"a": float(i % 7), "b": float(i)}, i % 7 == 0)
>>> sampled.labels, sampled.learned < 300
(1000, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from river import base, forest

from models.sampling import keep


class Bounded(base.Classifier):
    """``model`` (an ARF) with its trees' ``max_size`` enforced every ``check_every`` labels.

    Parameters
    ----------
    model
        The forest (a River ``ARFClassifier``: its ``lambda_value`` carries the weights).
    check_every
        Labels between two size checks (labels seen, learned or skipped).
    legit_share
        Share of legitimate labels the forest learns, weighted by its inverse; every fraud
        is learned. 1.0: every label.
    seed
        Seeds which legitimate labels are kept.
    """

    def __init__(
        self,
        model: base.Classifier,
        check_every: int = 2_000,
        legit_share: float = 1.0,
        seed: int = 0,
    ) -> None:
        if not 0.0 < legit_share <= 1.0:
            raise ValueError("legit_share must be in (0, 1]")
        self.model = model
        self.check_every = check_every
        self.legit_share = legit_share
        self.seed = seed
        self.labels = 0
        self.learned = 0
        self.checks = 0

    @property
    def _multiclass(self) -> bool:
        return False

    def trees(self) -> Iterator[Any]:
        """The forest's trees, foreground and background."""
        yield from getattr(self.model, "data", [])
        yield from (t for t in getattr(self.model, "_background", []) or [] if t is not None)

    def learn_one(self, x: dict[Any, Any], y: Any, **kwargs: Any) -> None:
        self.labels += 1
        if y or self.legit_share >= 1.0:
            self.model.learn_one(x, y)
            self.learned += 1
        elif keep(x, self.legit_share, self.seed):
            self._learn_weighted(x, y, 1.0 / self.legit_share)
            self.learned += 1
        if self.labels % self.check_every == 0:
            self.enforce()

    def _learn_weighted(self, x: dict[Any, Any], y: Any, weight: float) -> None:
        """One row counted ``weight`` times: the forest's Poisson bagging rate times ``weight``."""
        rate = getattr(self.model, "lambda_value", None)
        if rate is None or not math.isfinite(weight):
            self.model.learn_one(x, y)
            return
        self.model.lambda_value = rate * weight  # type: ignore[attr-defined]
        try:
            self.model.learn_one(x, y)
        finally:
            self.model.lambda_value = rate  # type: ignore[attr-defined]

    def enforce(self) -> None:
        """Run every tree's size estimate now (deactivating leaves beyond its budget)."""
        self.checks += 1
        for tree in self.trees():
            if getattr(tree, "_root", None) is not None:
                tree._estimate_model_size()

    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> dict[Any, float]:
        answer: dict[Any, float] = self.model.predict_proba_one(x)
        total = sum(answer.values())
        p = answer.get(True, 0.0) / total if total > 0 else 0.0  # no leaf yet: no evidence
        return {False: 1.0 - p, True: p}

    def predict_one(self, x: dict[Any, Any], **kwargs: Any) -> Any:
        return self.model.predict_one(x)

    def _unit_test_skips(self) -> set[str]:
        skips: set[str] = self.model._unit_test_skips()
        return skips

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {"model": forest.ARFClassifier(n_models=3, max_size=0.05, seed=1), "check_every": 20}
