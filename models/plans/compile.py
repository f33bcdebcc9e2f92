"""models room: which River object becomes which plan part (None: keep the River object).

Pipelines are read step by step: a leading :class:`models.preprocess.SignedLog` and a
``StandardScaler`` are folded into what follows (the scaler only into a logistic
regression); a ``river.imblearn`` sampler changes learning only, so its classifier is
compiled in its place. Anything else — another transformer, naive Bayes leaves, nominal
splits, a windowed scaler — gives None, and the caller keeps scoring with the River object.
"""

from __future__ import annotations

from typing import Any

from river import compose, forest, imblearn, linear_model, preprocessing, tree

from models.booster import WindowedBooster
from models.bounded import Bounded
from models.ensemble import Blend
from models.plans.base import Part, Plan
from models.plans.combine import (
    BlendPart,
    StackPart,
    StackPlan,
    compile_booster,
    compile_stack,
)
from models.plans.forest import compile_forest, compile_tree
from models.plans.linear import compile_linear
from models.preprocess import SignedLog
from models.stack import Stack

_SAMPLERS = (imblearn.RandomUnderSampler, imblearn.RandomOverSampler, imblearn.RandomSampler)
_TREES = (tree.HoeffdingTreeClassifier, tree.HoeffdingAdaptiveTreeClassifier)


def compile_plan(model: Any) -> Plan | None:
    """The plan of a zoo model (a member's ``model``), or None when it has none."""
    part = compile_part(model)
    if part is None:
        return None
    kind = type(model).__name__
    if isinstance(model, compose.Pipeline):
        kind = " | ".join(type(step).__name__ for step in model.steps.values())
    if isinstance(part, StackPart):
        return StackPlan(part, kind)
    return Plan(part, kind)


def compile_part(model: Any, signed: bool = False, scaler: Any | None = None) -> Part | None:
    """The part answering like ``model`` after the folded transformers."""
    if isinstance(model, compose.Pipeline):
        return _pipeline(list(model.steps.values()), signed, scaler)
    if isinstance(model, _SAMPLERS):
        return compile_part(model.classifier, signed, scaler)
    if type(model) is linear_model.LogisticRegression:
        return compile_linear(model, signed, scaler)
    if scaler is not None:
        return None  # a scaler folds into a linear model only
    if isinstance(model, Bounded) and type(model.model) is forest.ARFClassifier:
        return compile_forest(model.model, signed, bounded=True)
    if type(model) is forest.ARFClassifier:
        return compile_forest(model, signed, bounded=False)
    if type(model) in _TREES:
        return compile_tree(model, signed)
    if signed:
        return None  # composites take raw features; their members fold their own steps
    if isinstance(model, Blend):
        return _blend(model)
    if isinstance(model, WindowedBooster):
        return compile_booster(model)
    if isinstance(model, Stack):
        return compile_stack(model, compile_part)
    return None


def _pipeline(steps: list[Any], signed: bool, scaler: Any | None) -> Part | None:
    *transformers, last = steps
    for step in transformers:
        if type(step) is SignedLog and not signed and scaler is None:
            signed = True
        elif type(step) is preprocessing.StandardScaler and scaler is None:
            scaler = step
        else:
            return None
    return compile_part(last, signed, scaler)


def _blend(model: Blend) -> Part | None:
    first, second = compile_part(model.first), compile_part(model.second)
    if first is None or second is None:
        return None
    return BlendPart(first, second, float(model.weight), model.on)
