"""Reason codes: which features pushed the champion's fraud probability up, and how.

Two methods, chosen by the model's shape:

* **linear** (a pipeline ending in ``LogisticRegression``): the contribution of a feature is
  its weight times its value as the model sees it (after the pipeline's transformers, i.e.
  signed-log and standardised), the exact additive decomposition of the log-odds. Its code
  says ``_high`` when that value is above the running mean (positive), ``_low`` below.
* **perturbation** (trees, forests, anything else): the ``candidates`` features furthest
  from their running mean (:class:`FeatureBaseline`) are each reset, one at a time, to that
  mean; the drop in probability is the feature's contribution. One prediction per
  candidate, so the cost is bounded. ``_high`` / ``_low`` compare the value with the mean.

Only features that raised the probability are reported, strongest first. Codes are stable:
``<feature name>_high`` or ``<feature name>_low``.

>>> baseline = FeatureBaseline()
>>> for amount in (10.0, 20.0, 30.0):
...     baseline.update({"amount": amount, "night": 0.0})
>>> risky = lambda x: min(1.0, x["amount"] / 1000)
>>> perturbation_reasons(risky, {"amount": 900.0, "night": 0.0}, baseline, top=3)
[Reason(code='amount_high', feature='amount', value=900.0, contribution=0.88)]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from river import base, compose, linear_model


@dataclass(frozen=True)
class Reason:
    """A reason code, the feature behind it, its value, and how much it raised the score
    (log-odds for linear models, probability for the others)."""

    code: str
    feature: str
    value: float
    contribution: float = 0.0


class FeatureBaseline:
    """Running mean of every feature over the labelled transactions a model learned from.

    >>> b = FeatureBaseline(); b.update({"a": 1.0}); b.update({"a": 3.0, "b": 5.0})
    >>> b.mean("a"), b.mean("b"), b.mean("c")
    (2.0, 5.0, None)
    """

    def __init__(self) -> None:
        self._stats: dict[str, tuple[int, float]] = {}

    def update(self, x: Mapping[str, float]) -> None:
        stats = self._stats
        for name, value in x.items():
            n, mean = stats.get(name, (0, 0.0))
            stats[name] = (n + 1, mean + (value - mean) / (n + 1))

    def mean(self, name: str) -> float | None:
        found = self._stats.get(name)
        return None if found is None else found[1]


def _side(name: str, above: bool) -> str:
    return f"{name}_{'high' if above else 'low'}"


def linear_head(model: Any) -> tuple[list[Any], linear_model.LogisticRegression] | None:
    """The transformers and the logistic regression of a linear pipeline, else None."""
    steps = list(model.steps.values()) if isinstance(model, compose.Pipeline) else [model]
    last = steps[-1]
    while isinstance(last, base.Wrapper) and not isinstance(last, compose.Pipeline):
        last = last._wrapped_model  # e.g. an imblearn sampler around the regression
    if not isinstance(last, linear_model.LogisticRegression):
        return None
    if not all(isinstance(step, base.Transformer) for step in steps[:-1]):
        return None
    return steps[:-1], last


def linear_reasons(model: Any, x: Mapping[str, float], top: int) -> list[Reason] | None:
    """Weight × transformed value per feature; None when ``model`` is not linear."""
    head = linear_head(model)
    if head is None:
        return None
    transformers, regression = head
    z: dict[str, float] = dict(x)
    for step in transformers:
        z = step.transform_one(z)
    weights = regression.weights
    found = []
    for name, value in z.items():
        contribution = float(weights.get(name, 0.0)) * float(value)
        if contribution > 0 and name in x:
            found.append(Reason(_side(name, value > 0), name, x[name], contribution))
    found.sort(key=lambda r: -r.contribution)
    return found[:top]


def perturbation_reasons(
    predict: Callable[[dict[str, float]], float | None],
    x: Mapping[str, float],
    baseline: FeatureBaseline,
    top: int,
    candidates: int = 8,
) -> list[Reason]:
    """Probability drop when each of the most unusual features is reset to its mean."""
    score = predict(dict(x))
    if score is None:
        return []
    distance = []
    for name, value in x.items():
        mean = baseline.mean(name)
        if mean is not None and value != mean:
            distance.append((abs(value - mean) / (abs(mean) + 1.0), name, mean))
    distance.sort(reverse=True)
    found = []
    for _, name, mean in distance[:candidates]:
        changed = predict({**x, name: mean})
        if changed is not None and score - changed > 0:
            contribution = round(score - changed, 12)
            found.append(Reason(_side(name, x[name] > mean), name, x[name], contribution))
    found.sort(key=lambda r: -r.contribution)
    return found[:top]
