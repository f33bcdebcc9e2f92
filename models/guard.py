"""Input and output guards between the feature service and River.

River does no input validation by design, and a single ``learn_one`` with NaN or inf turns
every weight of a linear model into NaN for good. So nothing
reaches a model before :func:`clean_features` has dropped what is not a finite number, and
nothing a model returns reaches a caller before :func:`probability` has checked it.

>>> clean = clean_features({"amount": 12.5, "n": 3, "bad": float("nan"), "s": "x"})
>>> clean.values, clean.dropped
({'amount': 12.5, 'n': 3.0}, 2)
>>> probability({False: 0.2, True: 0.8}), probability({}), probability({True: float("nan")})
(0.8, 0.0, None)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

# Finite but astronomically large values overflow the running variance of a scaler
# (x² = inf). Values beyond this bound are clipped, and counted, rather than dropped: a huge
# amount is still information ("very large"), unlike NaN.
MAX_ABS_VALUE = 1e12


@dataclass(frozen=True)
class CleanFeatures:
    """Features safe for River, and how many inputs were dropped or clipped to get them."""

    values: dict[str, float]
    dropped: int = 0
    clipped: int = 0


def _as_float(value: object) -> float | None:
    if value.__class__ is float:  # the common case, without the ABC machinery
        return value if math.isfinite(value) else None
    # numbers.Real covers int, float, bool and numpy scalars; Decimal is not Real but is
    # what the wire schema uses for amounts, so accept anything float() takes exactly.
    if isinstance(value, numbers.Real) or type(value).__name__ == "Decimal":
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            return None
        return number if math.isfinite(number) else None
    return None


def clean_features(features: Mapping[str, object]) -> CleanFeatures:
    """Keep finite numbers under string keys, clip huge ones, drop everything else."""
    values: dict[str, float] = {}
    dropped = clipped = 0
    try:
        items = list(features.items())
    except Exception:  # a broken mapping is one dropped input, not a crash
        return CleanFeatures({}, dropped=1)
    for name, raw in items:
        number = _as_float(raw) if isinstance(name, str) else None
        if number is None:
            dropped += 1
            continue
        if abs(number) > MAX_ABS_VALUE:
            number = math.copysign(MAX_ABS_VALUE, number)
            clipped += 1
        values[name] = number
    return CleanFeatures(values, dropped, clipped)


def probability(proba: object) -> float | None:
    """P(fraud) from a ``predict_proba_one`` answer, or None when the answer is garbage.

    An empty dict (a tree that has not learned yet) means "no evidence": probability 0.
    """
    if not isinstance(proba, Mapping):
        return None
    if not proba:
        return 0.0
    value = proba.get(True, 0.0)
    number = _as_float(value)
    if number is None or not -1e-9 <= number <= 1 + 1e-9:
        return None
    return min(1.0, max(0.0, number))
