"""Online quality metrics per model, judged on the score each model gave at scoring time.

ROC AUC and average precision are computed exactly over a rolling window of the last N labels
(the same definitions as scikit-learn: tied scores share their rank; AP is the step-wise
sum of precision × recall increments over distinct thresholds). The window is a ring buffer;
the O(N log N) sort runs lazily, when a snapshot is read after an update, and is cached, so
learning stays O(1) per label.

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

EPS = 1e-15
Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]


def _ranked(y: Bools, s: Floats) -> tuple[Floats, Floats]:
    """Cumulative true and false positives at each distinct score, highest first."""
    order = np.argsort(-s, kind="mergesort")
    ranked, hits = s[order], y[order].astype(np.float64)
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    tps = np.cumsum(hits)[ends]
    return tps, (ends + 1) - tps


def roc_auc(y: npt.ArrayLike, s: npt.ArrayLike) -> float | None:
    """Exact ROC AUC (ties count half, as Mann–Whitney); None with a single class."""
    labels, scores = np.asarray(y, dtype=bool), np.asarray(s, dtype=np.float64)
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        return None
    tps, fps = _ranked(labels, scores)
    tpr, fpr = np.r_[0.0, tps / tps[-1]], np.r_[0.0, fps / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)


def average_precision(y: npt.ArrayLike, s: npt.ArrayLike) -> float | None:
    """Average precision as scikit-learn defines it; None without any positive."""
    labels, scores = np.asarray(y, dtype=bool), np.asarray(s, dtype=np.float64)
    if not labels.any():
        return None
    tps, fps = _ranked(labels, scores)
    recall_steps = np.diff(np.r_[0.0, tps / tps[-1]])
    return float(np.sum(recall_steps * tps / (tps + fps)))


def log_loss(y: npt.ArrayLike, s: npt.ArrayLike) -> float | None:
    """Mean binary cross-entropy, probabilities clipped to [1e-15, 1 - 1e-15]."""
    labels, scores = np.asarray(y, dtype=bool), np.asarray(s, dtype=np.float64)
    if len(labels) == 0:
        return None
    p = np.clip(scores, EPS, 1 - EPS)
    return float(-np.mean(np.where(labels, np.log(p), np.log1p(-p))))


def expected_calibration_error(y: npt.ArrayLike, s: npt.ArrayLike, bins: int = 15) -> float | None:
    """ECE: the count-weighted mean |fraud rate − mean score| over ``bins`` equal-width bins.

    >>> expected_calibration_error([False, True, False, False], [0.0, 1.0, 0.1, 0.1])
    0.05
    """
    labels, scores = np.asarray(y, dtype=bool), np.asarray(s, dtype=np.float64)
    if len(labels) == 0:
        return None
    index = np.minimum((scores * bins).astype(np.int64), bins - 1)
    hits = np.bincount(index, weights=labels.astype(np.float64), minlength=bins)
    sums = np.bincount(index, weights=scores, minlength=bins)
    return float(np.abs(hits - sums).sum() / len(labels))


def card_precision_at_k(
    days: npt.ArrayLike, cards: npt.ArrayLike, y: npt.ArrayLike, s: npt.ArrayLike, k: int = 100
) -> float | None:
    """Mean over days of the share of frauded cards among the day's ``k`` riskiest cards.

    A card's daily risk is its highest score that day; it counts as frauded when any of its
    transactions that day is fraud (the "card precision top-k" of the fraud-detection
    handbook: what a team reviewing ``k`` cards a day would catch).

    >>> card_precision_at_k([0, 0, 0, 1], ["a", "a", "b", "a"], [True, False, False, False],
    ...                     [0.9, 0.1, 0.5, 0.2], k=1)
    0.5
    """
    day_arr, card_arr = np.asarray(days), np.asarray(cards)
    labels, scores = np.asarray(y, dtype=bool), np.asarray(s, dtype=np.float64)
    if len(labels) == 0:
        return None
    out = []
    for day in np.unique(day_arr):
        mask = day_arr == day
        risk: dict[Any, tuple[float, bool]] = {}
        for card, label, score in zip(card_arr[mask], labels[mask], scores[mask], strict=True):
            old = risk.get(card, (-1.0, False))
            risk[card] = (max(old[0], float(score)), old[1] or bool(label))
        top = sorted(risk.values(), key=lambda r: -r[0])[:k]
        out.append(sum(1 for _, fraud in top if fraud) / k)
    return float(np.mean(out))


@dataclass(frozen=True)
class ThresholdCounts:
    """Confusion counts of ``score >= threshold`` and the precision and recall they give."""

    threshold: float
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @classmethod
    def of(cls, threshold: float, y: npt.ArrayLike, s: npt.ArrayLike) -> ThresholdCounts:
        labels, flagged = np.asarray(y, dtype=bool), np.asarray(s, dtype=np.float64) >= threshold
        tp, fp = int((flagged & labels).sum()), int((flagged & ~labels).sum())
        fn = int((~flagged & labels).sum())
        return cls(threshold, tp, fp, fn, len(labels) - tp - fp - fn)

    def cells(self) -> dict[str, int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}


class RollingQuality:
    """Rolling-window quality of one model: ``update(label, score_at_scoring_time)``.

    Parameters
    ----------
    window
        How many of the most recent labels the metrics cover (``labels`` counts them all).
    review, decline
        Thresholds at which confusion counts, precision and recall are reported.
    """

    def __init__(self, window: int = 10_000, review: float = 0.5, decline: float = 0.9) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window, self.review, self.decline = window, review, decline
        self.labels = 0
        self._y = np.zeros(window, dtype=np.bool_)
        self._s = np.zeros(window, dtype=np.float64)
        self._tags = np.zeros(window, dtype=np.int64)
        self._cache: dict[str, Any] | None = None

    def update(self, label: bool, score: float, tag: int = -1) -> None:
        """Record an outcome and the score given at scoring time (``tag``: label sequence)."""
        if not math.isfinite(score):
            raise ValueError("score must be finite")
        slot = self.labels % self.window
        self._y[slot], self._s[slot], self._tags[slot] = bool(label), score, tag
        self.labels += 1
        self._cache = None

    def arrays(self) -> tuple[Bools, Floats]:
        """Labels and scores in the window, oldest first (copies)."""
        order = self._order()
        return self._y[order], self._s[order]

    def tags(self) -> npt.NDArray[np.int64]:
        """Tags of the window's labels, oldest first (aligned with :meth:`arrays`)."""
        return self._tags[self._order()]

    def _order(self) -> npt.NDArray[np.int64]:
        if self.labels <= self.window:
            return np.arange(self.labels, dtype=np.int64)
        start = self.labels % self.window
        return np.concatenate(
            (np.arange(start, self.window, dtype=np.int64), np.arange(start, dtype=np.int64))
        )

    def snapshot(self) -> dict[str, Any]:
        """Metrics of the current window (a fresh dict; computed once per update)."""
        if self._cache is None:
            self._cache = self._compute()
        return {**self._cache, "confusion": dict(self._cache["confusion"])}

    def _compute(self) -> dict[str, Any]:
        y, s = self.arrays()
        out: dict[str, Any] = {
            "labels": self.labels,
            "window": self.window,
            "window_labels": len(y),
            "frauds_in_window": int(y.sum()),
            "roc_auc": roc_auc(y, s),
            "average_precision": average_precision(y, s),
            "log_loss": log_loss(y, s),
            "confusion": {},
        }
        for name, threshold in (("review", self.review), ("decline", self.decline)):
            counts = ThresholdCounts.of(threshold, y, s)
            out["confusion"][name] = counts.cells()
            out[f"precision_at_{name}"] = counts.precision
            out[f"recall_at_{name}"] = counts.recall
        return out
