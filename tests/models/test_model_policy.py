"""Automatic promotion: paired bootstrap on shared labels, explained, seeded, off by default."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from mstreams import new_pool, stream
from sklearn.metrics import average_precision_score

from models import policy, pool, zoo


def test_weighted_ap_equals_the_ap_of_the_resampled_arrays() -> None:
    rng = np.random.default_rng(4)
    y = rng.random(300) < 0.2
    s = np.round(rng.random(300) * 0.5 + 0.4 * y, 2).astype(np.float64)  # ties on purpose
    counts = rng.multinomial(300, np.full(300, 1 / 300), size=20)
    got = policy.weighted_ap(y, s, counts)
    for row, value in zip(counts, got, strict=True):
        picked = np.repeat(np.arange(300), row)
        assert value == pytest.approx(average_precision_score(y[picked], s[picked]), abs=1e-9)


def judged_pool(**settings: object) -> pool.ModelPool:
    return pool.ModelPool(
        [zoo.ZOO["hat"], zoo.ZOO["logreg"]],
        champion="hat",
        policy=pool.PromotionPolicy(**settings),  # type: ignore[arg-type]
    )


def feed(models: pool.ModelPool, n: int, good: str, noise: float = 0.0, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    for x, y in stream(n, seed=seed):
        clear = (0.9 if y else 0.1) + rng.normal(0, noise)
        scores = {name: 0.5 for name in models.members} | {good: float(np.clip(clear, 0, 1))}
        models.learn(x, y, scores)


def test_a_clear_winner_is_promoted_with_its_numbers() -> None:
    models = judged_pool(min_labels=200, margin=0.05, resamples=100)
    early = models.evaluate_policy()
    assert not early.promote and "shared labels" in early.explanation
    feed(models, 2000, good="logreg")
    at = datetime(2026, 2, 1, tzinfo=UTC)
    decision = models.evaluate_policy(at)
    assert decision.promote and decision.challenger == "logreg" and decision.at == at
    assert decision.numbers["bootstrap_win_share"] >= 0.95
    assert decision.numbers["challenger_ap"] - decision.numbers["champion_ap"] >= 0.05
    assert "logreg" in decision.explanation and "promote" in decision.explanation
    assert models.champion == "hat"  # evaluating never applies


def test_the_policy_is_off_by_default_and_its_decision_promotes_when_applied() -> None:
    """What the service's one promotion path does (app.core.promotion.Promotions)."""
    assert not judged_pool(min_labels=200, resamples=50).policy.enabled
    enabled = judged_pool(enabled=True, min_labels=200, resamples=50)
    feed(enabled, 1000, good="logreg")
    at = datetime(2026, 2, 1, tzinfo=UTC)
    decision = enabled.evaluate_policy(at)
    assert decision.promote and decision.challenger == "logreg"
    record = enabled.promote(decision.challenger, decision.explanation, automatic=True, at=at)
    assert record.automatic and record.to_model == "logreg" and record.at == at
    assert enabled.champion == "logreg" and "bootstrap" not in record.reason.split()[0]


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"min_labels": 5000}, "only 1000 shared labels"),
        ({"min_labels": 100, "margin": 0.99}, "needs 0.99"),
    ],
)
def test_no_promotion_below_the_bars_and_it_says_why(
    settings: dict[str, float], words: str
) -> None:
    models = judged_pool(resamples=50, **settings)
    feed(models, 1000, good="logreg")
    decision = models.evaluate_policy()
    assert not decision.promote and words in decision.explanation


def test_a_noisy_tie_is_not_promoted() -> None:
    models = judged_pool(min_labels=100, margin=0.0, confidence=0.95, resamples=100)
    rng = np.random.default_rng(0)
    for x, y in stream(1500, seed=5):
        base = (0.7 if y else 0.3) + rng.normal(0, 0.3)
        scores = {"hat": float(np.clip(base + rng.normal(0, 0.01), 0, 1))}
        scores["logreg"] = float(np.clip(base + rng.normal(0, 0.01), 0, 1))
        models.learn(x, y, scores)
    decision = models.evaluate_policy()
    assert not decision.promote
    assert 0.05 < decision.numbers["bootstrap_win_share"] < 0.95


def test_only_shared_labels_count_for_a_late_challenger() -> None:
    models = judged_pool(min_labels=100, resamples=50)
    for x, y in stream(500):
        models.learn(x, y, {"hat": 0.5})  # the challenger did not score these
    feed(models, 300, good="logreg", seed=2)
    decision = models.evaluate_policy()
    assert decision.numbers["labels"] == 300


def test_decisions_are_reproducible() -> None:
    first, second = judged_pool(min_labels=100), judged_pool(min_labels=100)
    for models in (first, second):
        feed(models, 800, good="logreg", noise=0.4)
    assert first.evaluate_policy().numbers == second.evaluate_policy().numbers


def test_no_challenger_no_promotion() -> None:
    decision = new_pool("logreg").evaluate_policy()
    assert not decision.promote and decision.challenger is None
