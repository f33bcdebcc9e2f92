"""Online quality metrics per model, judged on the score each model gave at scoring time.

ROC AUC and average precision are computed exactly over a rolling window of the last N labels
(the same definitions as scikit-learn: tied scores share their rank; AP is the step-wise
sum of precision × recall increments over distinct thresholds). They are recomputed lazily —
only when read after an update — so learning stays O(1) per label.

>>> import numpy as np
>>> y = np.array([False, False, True, True]); s = np.array([0.1, 0.4, 0.35, 0.8])
>>> roc_auc(y, s), round(average_precision(y, s), 4)
(0.75, 0.8333)
>>> q = RollingQuality(window=3, review=0.5, decline=0.9)
>>> for label, score in [(True, 0.95), (False, 0.2), (True, 0.6), (False, 0.7)]:
...     q.update(label, score)
>>> q.snapshot()["labels"], q.snapshot()["window_labels"], q.snapshot()["roc_auc"]
(4, 3, 0.5)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EPS = 1e-15


def roc_auc(y: np.ndarray, s: np.ndarray) -> float | None:
    """Exact ROC AUC (Mann–Whitney with average ranks); None with a single class."""
    y = np.asarray(y, dtype=bool)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    sorted_scores = np.asarray(s, dtype=float)[order]
    ranks = np.empty(len(s), dtype=float)
    # average rank of each run of tied scores
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(s)]))
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    rank_sum = float(ranks[y].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def average_precision(y: np.ndarray, s: np.ndarray) -> float | None:
    """Average precision as scikit-learn defines it; None without any positive."""
    y = np.asarray(y, dtype=bool)
    positives = int(y.sum())
    if positives == 0:
        return None
    order = np.argsort(-np.asarray(s, dtype=float), kind="mergesort")
    scores, labels = np.asarray(s, dtype=float)[order], y[order]
    distinct = np.flatnonzero(np.diff(scores)) if len(scores) > 1 else np.array([], dtype=int)
    last = np.concatenate((distinct, [len(scores) - 1]))
    true_pos = np.cumsum(labels)[last]
    predicted = last + 1
    precision = true_pos / predicted
    recall = true_pos / positives
    increments = np.diff(np.concatenate(([0.0], recall)))
    return float(np.sum(increments * precision))


def _log_loss(label: bool, score: float) -> float:
    p = min(max(score, EPS), 1 - EPS)
    return -math.log(p if label else 1 - p)


@dataclass
class RollingQuality:
    """Rolling-window quality of one model; ``update(label, score_at_scoring_time)``."""

    window: int = 10_000
    review: float = 0.5
    decline: float = 0.9
    labels: int = 0
    _pairs: deque[tuple[bool, float]] = field(default_factory=deque)
    _loss_sum: float = 0.0
    _cache: dict[str, Any] | None = None

    def update(self, label: bool, score: float) -> None:
        self._pairs.append((bool(label), float(score)))
        self._loss_sum += _log_loss(label, score)
        if len(self._pairs) > self.window:
            old_label, old_score = self._pairs.popleft()
            self._loss_sum -= _log_loss(old_label, old_score)
        self.labels += 1
        self._cache = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        y = np.fromiter((p[0] for p in self._pairs), dtype=bool, count=len(self._pairs))
        s = np.fromiter((p[1] for p in self._pairs), dtype=float, count=len(self._pairs))
        return y, s

    def snapshot(self) -> dict[str, Any]:
        if self._cache is None:
            self._cache = self._compute()
        return dict(self._cache)

    def _compute(self) -> dict[str, Any]:
        y, s = self.arrays()
        n = len(y)
        out: dict[str, Any] = {
            "labels": self.labels,
            "window": self.window,
            "window_labels": n,
            "frauds_in_window": int(y.sum()),
            "roc_auc": roc_auc(y, s) if n else None,
            "average_precision": average_precision(y, s) if n else None,
            "log_loss": self._loss_sum / n if n else None,
            "confusion": {},
        }
        for name, threshold in (("review", self.review), ("decline", self.decline)):
            flagged = s >= threshold
            tp, fp = int((flagged & y).sum()), int((flagged & ~y).sum())
            fn, tn = int((~flagged & y).sum()), int((~flagged & ~y).sum())
            out["confusion"][name] = {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
            out[f"precision_at_{name}"] = tp / (tp + fp) if tp + fp else None
            out[f"recall_at_{name}"] = tp / (tp + fn) if tp + fn else None
        return out
