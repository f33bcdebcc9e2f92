"""Reason codes: linear contributions for the linear model, perturbation for trees."""

from __future__ import annotations

import pytest
from mstreams import new_pool, stream, train
from river import linear_model

from models import explain

ODD = {
    "amount": 50_000.0,
    "card_count_1d": 3.0,
    "card_amount_to_mean_30d": 9.0,
    "merchant_fraud_ratio_7d": 0.01,
}


def test_linear_reasons_are_weight_times_standardised_value() -> None:
    models = new_pool("logreg")
    train(models, stream(2000))
    model = models.members["logreg"].model
    transformers, regression = explain.linear_head(model)  # type: ignore[misc]
    assert isinstance(regression, linear_model.LogisticRegression)
    z = dict(ODD)
    for step in transformers:
        z = step.transform_one(z)
    reasons = models.explain(ODD, top=4)
    assert reasons, "an unusually large fraud-like transaction has reasons"
    for r in reasons:
        assert r.contribution == pytest.approx(regression.weights[r.feature] * z[r.feature])
        assert r.code == f"{r.feature}_{'high' if z[r.feature] > 0 else 'low'}"
        assert r.value == ODD[r.feature] and r.contribution > 0
    assert [r.contribution for r in reasons] == sorted(
        (r.contribution for r in reasons), reverse=True
    )
    assert reasons[0].feature in {"amount", "card_amount_to_mean_30d"}


@pytest.mark.parametrize("champion", ["hat", "arf"])
def test_tree_reasons_are_probability_drops_when_reset_to_the_mean(champion: str) -> None:
    models = new_pool(champion)
    train(models, stream(3000))
    member = models.members[champion]
    reasons = models.explain(ODD, top=3)
    assert len(reasons) <= 3
    base = member.predict(dict(ODD))
    assert base is not None
    for r in reasons:
        mean = member.baseline.mean(r.feature)
        assert mean is not None
        changed = member.predict({**ODD, r.feature: mean})
        assert changed is not None
        assert r.contribution == pytest.approx(base - changed) and r.contribution > 0
        assert r.code == f"{r.feature}_{'high' if ODD[r.feature] > mean else 'low'}"


def test_explaining_garbage_never_raises() -> None:
    models = new_pool("arf")
    assert models.explain({"amount": float("nan"), "x": "y"}) == []
