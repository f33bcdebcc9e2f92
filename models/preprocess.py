"""Stateless River transformers used at the head of the zoo's pipelines.

Fraud features are heavy-tailed: counts, sums and ratios span orders of magnitude, and one
extreme amount dominates a running mean and variance. A signed logarithm keeps the order of
values (so trees split at the same places) while making the scale sane for a linear model's
gradient steps and for the Gaussian split estimators of Hoeffding trees.

>>> SignedLog().transform_one({"amount": 99.0, "zscore": -3.0, "flag": 0.0})
{'amount': 4.605..., 'zscore': -1.386..., 'flag': 0.0}
"""

from __future__ import annotations

import math
from typing import Any

from river import base


def signed_log(value: float) -> float:
    """``sign(x) * log(1 + |x|)``: monotone, odd, defined everywhere, ~x near zero."""
    return math.copysign(math.log1p(abs(value)), value)


class SignedLog(base.Transformer):
    """Replace every numeric feature ``x`` by ``sign(x) * log1p(|x|)``; others pass through.

    Stateless: nothing is learned, so it can sit in front of any model. (No parameters: a
    tuple-valued parameter would break River's ``clone`` and its conformance checks.)

    Examples
    --------
    >>> SignedLog().transform_one({"amount": 0.0, "count": 3.0, "name": "x"})
    {'amount': 0.0, 'count': 1.386..., 'name': 'x'}
    """

    def transform_one(self, x: dict[Any, Any]) -> dict[Any, Any]:
        out = {}
        for name, value in x.items():
            kind = value.__class__
            # exact-type fast path: the pool hands over plain floats (see models.guard)
            if kind is float or kind is int or _is_number(value):
                out[name] = math.copysign(math.log1p(abs(value)), value)
            else:
                out[name] = value
        return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
