"""Bad input never poisons a model: every probability stays finite, in [0, 1], and useful."""

from __future__ import annotations

import functools
import math
import pickle
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mstreams import FEATURES, HEAVY, new_pool, stream, train
from river import linear_model

from models import explain, guard, pool, zoo

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e308, max_value=1e308),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
    st.lists(st.floats(), max_size=2),
)
features = st.dictionaries(st.one_of(st.sampled_from([*FEATURES, "junk"]), st.text()), values)

# Every model (make test), and the cheaper ones with one forest (make test-fast, in seconds).
POOLS = [
    pytest.param(tuple(n for n in zoo.ZOO if n not in HEAVY), id="light"),
    pytest.param(tuple(zoo.ZOO), id="all", marks=pytest.mark.slow),
]


@functools.cache
def trained(names: tuple[str, ...]) -> pool.ModelPool:
    """Trained once: hypothesis then hits copies of models that already learned something,
    the state in which a NaN would do the most damage (built on first use, not at import)."""
    models = new_pool(*names)
    train(models, stream(400))
    return models


CHECK = [x for x, _ in stream(30, seed=9)]


def _regression(models: pool.ModelPool) -> linear_model.LogisticRegression:
    head = explain.linear_head(models.members["logreg"].model)
    assert head is not None
    return head[1]


def _all_finite(weights: dict[str, float]) -> bool:
    return all(math.isfinite(w) for w in weights.values())


@pytest.mark.parametrize("names", POOLS)
@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.tuples(features, st.booleans()), min_size=1, max_size=6))
def test_any_input_keeps_every_probability_finite(
    names: tuple[str, ...], batch: list[tuple[dict[str, object], bool]]
) -> None:
    models = _copy(trained(names))
    for x, y in batch:
        scores = models.score(x)
        for s in scores:
            assert math.isfinite(s.score) and 0.0 <= s.score <= 1.0
        models.learn(x, y, {s.name: s.score for s in scores})
        models.explain(x)
    for probe in CHECK:
        for s in models.score(probe):
            assert math.isfinite(s.score) and 0.0 <= s.score <= 1.0 and not s.fallback
    regression = _regression(models)
    assert _all_finite(regression.weights) and math.isfinite(regression.intercept)
    assert all(row["errors"] == 0 for row in models.status())


def _copy(models: pool.ModelPool) -> pool.ModelPool:
    copied: pool.ModelPool = pickle.loads(pickle.dumps(models))
    return copied


def test_huge_values_do_not_overflow_the_scaler() -> None:
    models = new_pool("logreg")
    for i in range(50):
        models.learn({"amount": 1e308 if i % 2 else -1e308, "n": float(i)}, i % 3 == 0, {})
    weights = _regression(models).weights
    assert _all_finite(weights)
    assert 0.0 <= models.score({"amount": 10.0, "n": 1.0})[0].score <= 1.0


def test_guard_keeps_only_finite_numbers() -> None:
    clean = guard.clean_features(
        {
            "f": 1.5,
            "i": 3,
            "b": True,
            "d": Decimal("2.5"),
            "np": np.float32(0.5),
            "nan": float("nan"),
            "inf": float("-inf"),
            "dinf": Decimal("Infinity"),
            "s": "1.0",
            "n": None,
            "big": 10**400,
            "huge": -1e300,
            7: 1.0,  # type: ignore[dict-item]
        }
    )
    assert clean.values == {"f": 1.5, "i": 3.0, "b": 1.0, "d": 2.5, "np": 0.5, "huge": -1e12}
    assert clean.dropped == 7 and clean.clipped == 1
    assert all(type(v) is float for v in clean.values.values())


def test_probability_accepts_only_distributions() -> None:
    assert guard.probability({True: 0.25, False: 0.75}) == 0.25
    assert guard.probability({False: 1.0}) == 0.0
    assert guard.probability({}) == 0.0
    for bad in (None, 0.3, {True: float("inf")}, {True: -0.5}, {True: "x"}):
        assert guard.probability(bad) is None
