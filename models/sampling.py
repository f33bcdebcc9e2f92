"""Deterministic sampling of legitimate labels: the same rows on every replay.

The costly learners (the forest, the booster's window) learn every fraud and a share ``q``
of legitimate labels, each weighted ``1 / q`` so their odds stay those of the live stream.
Which rows are kept is a function of the features alone: a replay of the learning log, or a
learner restored from a checkpoint and re-learning the log after it, keeps exactly the same
rows, whatever the order the labels arrive in. A float's hash is the same in every process
(unlike a string's, which ``PYTHONHASHSEED`` randomises), so only numeric values count.

>>> keep({"a": 1.0}, 1.0)
True
>>> keep({"a": 1.0, "b": 2.0}, 0.3) == keep({"b": 2.0, "a": 1.0}, 0.3)
True
>>> rows = [{"a": float(i)} for i in range(10_000)]
>>> 900 < sum(keep(x, 0.1) for x in rows) < 1100
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MIX = 0x9E3779B97F4A7C15  # Fibonacci hashing: spreads a 64-bit hash evenly over [0, 1)
_MASK = (1 << 64) - 1


def unit(x: Mapping[Any, Any], seed: int = 0) -> float:
    """A number in [0, 1) fixed by the numeric feature values of ``x`` (order-free)."""
    values = sorted(v for v in x.values() if isinstance(v, int | float) and v == v)
    h = hash((seed, *values))
    return ((h * _MIX) & _MASK) / 2.0**64


def keep(x: Mapping[Any, Any], share: float, seed: int = 0) -> bool:
    """Whether a legitimate row with features ``x`` is in the sample of this ``share``."""
    return share >= 1.0 or unit(x, seed) < share
