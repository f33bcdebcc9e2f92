"""A weighted mean of classifiers' fraud probabilities (River has no probability voter).

Models with different inductive biases err differently: a forest captures thresholds and
interactions, a logistic regression a smooth additive trend that keeps ranking sensibly
where the trees are still shallow. Averaging their probabilities ranks better than either
(``bench/models.py``), provided they are on one scale, which is why the zoo trains both
on the same re-balanced stream.

>>> from river import linear_model, tree
>>> blend = WeightedMean([linear_model.LogisticRegression(), tree.HoeffdingTreeClassifier()],
...                      weights=[3.0, 1.0])
>>> blend.predict_proba_one({"x": 1.0})  # untrained: 0.5 from the first, 0 from the tree
{False: 0.625, True: 0.375}
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from river import base


class WeightedMean(base.Classifier):
    """P(fraud) is the weighted mean of each model's P(fraud); every model learns every label.

    Parameters
    ----------
    models
        Binary classifiers (or pipelines ending in one) answering ``{False: p0, True: p1}``.
    weights
        One non-negative weight per model; equal weights when omitted.

    Examples
    --------
    >>> from river import linear_model
    >>> blend = WeightedMean([linear_model.LogisticRegression()])
    >>> blend.learn_one({"x": 1.0}, True)
    >>> round(blend.predict_proba_one({"x": 1.0})[True], 3)
    0.502
    """

    def __init__(self, models: list[Any], weights: list[float] | None = None) -> None:
        if not models:
            raise ValueError("at least one model")
        if weights is not None and (len(weights) != len(models) or min(weights) < 0):
            raise ValueError("one non-negative weight per model")
        if weights is not None and sum(weights) <= 0:
            raise ValueError("weights must not all be zero")
        self.models = models
        self.weights = weights

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        from river import linear_model, optim

        fast = linear_model.LogisticRegression(optimizer=optim.SGD(0.1))
        yield {"models": [linear_model.LogisticRegression(), fast], "weights": [2.0, 1.0]}

    @property
    def _multiclass(self) -> bool:
        return False

    def learn_one(self, x: dict[Any, Any], y: Any, **kwargs: Any) -> None:
        for model in self.models:
            model.learn_one(x, y)

    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> dict[Any, float]:
        weights = self.weights or [1.0] * len(self.models)
        total = 0.0
        for weight, model in zip(weights, self.models, strict=True):
            total += weight * float(model.predict_proba_one(x).get(True, 0.0))
        p = total / sum(weights)
        if math.isfinite(p):  # NaN goes through, for the pool's guard to see and count
            p = min(1.0, max(0.0, p))
        return {False: 1.0 - p, True: p}
