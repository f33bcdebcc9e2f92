"""The causal budget replay of ``riverguard evaluate``: it reviews and declines the shares it
is given on stationary scores, never looks ahead, and counts caught frauds exactly."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from app.tools.evaluate_budget import budget_outcome, weekly_ap
from models.stream import Run


def _run(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_]) -> Run:
    n = len(scores)
    return Run("m", np.arange(n), labels, scores, n, n, 1.0, times=np.arange(n) * np.float64(60))


@pytest.mark.parametrize(("review", "decline"), [(0.02, 0.005), (0.1, 0.0), (0.05, 0.05)])
def test_stationary_scores_meet_their_budgets(review: float, decline: float) -> None:
    rng = np.random.default_rng(4)
    scores = rng.random(60_000)
    out = budget_outcome(_run(scores, scores > 0.999), review, decline)
    assert out.review_share == pytest.approx(review, rel=0.1, abs=0.001)
    assert out.decline_share == pytest.approx(decline, rel=0.1, abs=0.001)


def test_no_decision_before_enough_scores_and_no_lookahead() -> None:
    # Rising scores: each is above every earlier one, so a causal replay flags everything
    # once it decides at all, and nothing before min_scores.
    scores = np.linspace(0, 1, 3000)
    out = budget_outcome(_run(scores, scores >= 0), 0.02, 0.005, min_scores=1000, every=1)
    assert out.decline_share == pytest.approx(2000 / 3000)
    assert out.caught == 2000


def test_caught_counts_frauds_among_flagged() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(6_000)
    labels = rng.random(6_000) < 0.02
    out = budget_outcome(_run(scores, labels), 0.02, 0.005, window=2_000, min_scores=300, every=1)
    # brute force with the same causal cutoffs
    caught = 0
    for i in range(6_000):
        recent = scores[max(0, i - 2_000) : i]
        if len(recent) >= 300 and scores[i] > np.quantile(recent, 0.975) and labels[i]:
            caught += 1
    assert out.caught == caught
    assert out.frauds == int(labels.sum())


def test_weekly_ap_partitions_the_run() -> None:
    rng = np.random.default_rng(2)
    scores = rng.random(30_000)
    weeks = weekly_ap(_run(scores, scores > 0.98))
    assert sum(n for _, n, _, _ in weeks) == 30_000
    assert [w for w, *_ in weeks] == list(range(len(weeks)))
