"""A two-model blend: the weighted mean of two classifiers' probabilities (or log-odds).

Forests and linear models fail on different frauds. On the project's simulator stream the
re-balanced logistic regression ranks online fraud (unfamiliar merchants, label-arrival
merchant risk) well while a forest suffers from drifting label delays; on the
benchmark-shaped ``handbook`` stream the forest wins by far (threshold effects on amounts and
terminals). The mean keeps most of the better model's ranking on each stream (figures in
:func:`models.zoo.blend`). Both members learn every example the blend is given (a member may
sub-sample inside itself, as the zoo's re-balanced models do). The members' scales differ
(a re-balanced model's odds are ~10x higher); ranking is what the mean is for, and the
service's thresholds are set on the blend's own scale.

>>> from river import linear_model
>>> blend = Blend(linear_model.LogisticRegression(), linear_model.LogisticRegression())
>>> blend.predict_proba_one({"x": 1.0})
{False: 0.5, True: 0.5}
>>> blend.learn_one({"x": 1.0}, True)
>>> blend.predict_proba_one({"x": 1.0})[True] > 0.5
True
"""

from __future__ import annotations

import math
from typing import Any

from river import base, linear_model

#: Probabilities are clipped to [EPS, 1 - EPS] before taking log-odds (a member that is
#: certain must not silence the other one).
EPS = 1e-6


def _logit(p: float) -> float:
    p = min(max(p, EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


class Blend(base.Classifier):
    """``P(fraud) = sigmoid(w * logit(p_first) + (1 - w) * logit(p_second))``, or with
    ``on="probability"`` simply ``w * p_first + (1 - w) * p_second``.

    Parameters
    ----------
    first, second
        Binary River classifiers (or pipelines ending in one); both learn every example.
    weight
        Weight of ``first``, in [0, 1].
    on
        ``"logit"`` (mean log-odds) or ``"probability"`` (mean probability).
    """

    def __init__(
        self,
        first: base.Classifier,
        second: base.Classifier,
        weight: float = 0.5,
        on: str = "logit",
    ) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError("weight must be in [0, 1]")
        if on not in ("logit", "probability"):
            raise ValueError("on must be 'logit' or 'probability'")
        self.first = first
        self.second = second
        self.weight = weight
        self.on = on

    @property
    def _multiclass(self) -> bool:
        return False

    def learn_one(self, x: dict[Any, Any], y: Any, **kwargs: Any) -> None:
        self.first.learn_one(x, y)
        self.second.learn_one(x, y)

    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> dict[Any, float]:
        first, second = self.first.predict_proba_one(x), self.second.predict_proba_one(x)
        if not first or not second:  # a member with no distribution yet has no vote
            return dict(first or second)
        a, b = first.get(True, 0.0), second.get(True, 0.0)
        if self.on == "probability":
            p = self.weight * a + (1.0 - self.weight) * b
        else:
            z = self.weight * _logit(a) + (1.0 - self.weight) * _logit(b)
            p = 1.0 / (1.0 + math.exp(-z))
        return {False: 1.0 - p, True: p}

    def predict_one(self, x: dict[Any, Any], **kwargs: Any) -> bool:
        return self.predict_proba_one(x)[True] > 0.5

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {
            "first": linear_model.LogisticRegression(),
            "second": linear_model.LogisticRegression(l2=0.1),
        }
