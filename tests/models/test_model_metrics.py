"""Rolling metrics: exact on the window (scikit-learn as the oracle), lazy, threshold counts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from models import metrics


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("window", [1, 37, 500])
def test_rolling_auc_ap_and_log_loss_equal_an_exact_computation(seed: int, window: int) -> None:
    rng = np.random.default_rng(seed)
    quality = metrics.RollingQuality(window=window)
    labels = rng.random(1500) < 0.1
    # rounding makes many tied scores, the case where definitions usually disagree
    scores = np.round(np.clip(rng.normal(0.3 + 0.3 * labels, 0.2), 0, 1), 2)
    for y, s in zip(labels, scores, strict=True):
        quality.update(bool(y), float(s))
    snap = quality.snapshot()
    y_w, s_w = labels[-window:], scores[-window:]
    assert snap["window_labels"] == window and snap["labels"] == 1500
    if 0 < y_w.sum() < len(y_w):
        assert snap["roc_auc"] == pytest.approx(roc_auc_score(y_w, s_w), abs=1e-6)
    else:
        assert snap["roc_auc"] is None
    if y_w.any():
        expected_ap = average_precision_score(y_w, s_w)
        assert snap["average_precision"] == pytest.approx(expected_ap, abs=1e-6)
    clipped = np.clip(s_w, 1e-15, 1 - 1e-15)
    assert snap["log_loss"] == pytest.approx(log_loss(y_w, clipped, labels=[False, True]))


def test_window_is_in_arrival_order_after_wrapping() -> None:
    quality = metrics.RollingQuality(window=3)
    for i in range(7):
        quality.update(i % 2 == 0, i / 10, tag=i)
    y, s = quality.arrays()
    assert s.tolist() == [0.4, 0.5, 0.6] and y.tolist() == [True, False, True]
    assert quality.tags().tolist() == [4, 5, 6]


def test_snapshot_is_cached_until_the_next_label() -> None:
    quality = metrics.RollingQuality(window=10)
    quality.update(True, 0.9)
    quality.update(False, 0.1)
    first = quality.snapshot()
    assert quality.snapshot() == first and quality._cache is not None
    quality.update(True, 0.05)
    assert quality.snapshot()["roc_auc"] == 0.5


def test_threshold_counts_precision_and_recall() -> None:
    quality = metrics.RollingQuality(window=100, review=0.5, decline=0.9)
    for y, s in [(True, 0.95), (True, 0.6), (True, 0.1), (False, 0.7), (False, 0.2)]:
        quality.update(y, s)
    snap = quality.snapshot()
    assert snap["confusion"]["review"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 1}
    assert snap["confusion"]["decline"] == {"tp": 1, "fp": 0, "fn": 2, "tn": 2}
    assert snap["precision_at_review"] == pytest.approx(2 / 3)
    assert snap["recall_at_review"] == pytest.approx(2 / 3)
    assert snap["precision_at_decline"] == 1.0 and snap["recall_at_decline"] == pytest.approx(1 / 3)


def test_undefined_metrics_are_none() -> None:
    assert metrics.roc_auc([False, False], [0.1, 0.2]) is None
    assert metrics.average_precision([False], [0.1]) is None
    empty = metrics.RollingQuality().snapshot()
    assert empty["roc_auc"] is None and empty["log_loss"] is None
    assert empty["precision_at_review"] is None and empty["labels"] == 0


def test_non_finite_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        metrics.RollingQuality().update(True, float("nan"))
