"""Automatic promotion policy: a challenger must win clearly, on enough shared labels.

Each model's rolling window holds, per label, the score it gave at scoring time and the
label's sequence number (its tag). The labels that both the champion and a challenger
scored are *shared*; a challenger added later, or a model restored from an older snapshot,
shares only the labels they both saw. A challenger is promoted when, on the shared labels:

1. there are at least ``min_labels`` of them, with both classes present;
2. its average precision beats the champion's by at least ``margin``;
3. a paired bootstrap (``resamples`` resamples of the shared labels with replacement, both
   models judged on the same resample, seeded) finds it better in at least ``confidence``
   of the resamples.

Among several qualifying challengers the largest AP gain wins. Every decision, promote or
not, carries an explanation and the numbers behind it (:class:`PolicyDecision`).

>>> import numpy as np
>>> tags = np.arange(40); y = np.array([True, False] * 20)
>>> windows = {"a": (tags, y, np.where(y, 0.2, 0.8)), "b": (tags, y, np.where(y, 0.9, 0.1))}
>>> decision = decide(PromotionPolicy(min_labels=10, resamples=50), "a", windows)
>>> decision.promote, decision.challenger, decision.numbers["bootstrap_win_share"]
(True, 'b', 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from models.metrics import average_precision

Window = tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.float64]]
_CHUNK = 64  # bootstrap resamples evaluated per vectorised batch (bounded memory)


@dataclass(frozen=True)
class PromotionPolicy:
    """When a challenger may replace the champion automatically (off by default)."""

    enabled: bool = False
    min_labels: int = 2000
    margin: float = 0.02
    confidence: float = 0.95
    resamples: int = 200
    seed: int = 7


@dataclass(frozen=True)
class PolicyDecision:
    """Whether to promote ``challenger`` over ``champion``, why, and the numbers."""

    promote: bool
    champion: str
    challenger: str | None
    explanation: str
    numbers: dict[str, Any] = field(default_factory=dict)
    candidates: tuple[str, ...] = ()
    at: datetime | None = None


def weighted_ap(y: npt.NDArray[np.bool_], s: npt.NDArray[np.float64], counts: Any) -> Any:
    """Average precision of each row of ``counts`` (multiplicities of the labels).

    A bootstrap resample is a multiset of labels; duplicates share their score, so they fall
    in the same threshold group and the weighted AP equals the AP of the resampled arrays.
    """
    order = np.argsort(-s, kind="mergesort")
    ranked = s[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    weights = counts[:, order].astype(np.float64)
    tps = np.cumsum(weights * y[order], axis=1)[:, ends]
    seen = np.cumsum(weights, axis=1)[:, ends]
    positives = tps[:, -1:]
    recall_steps = np.diff(np.c_[np.zeros(len(tps)), tps], axis=1) / np.maximum(positives, 1)
    precision = np.divide(tps, seen, out=np.zeros_like(tps), where=seen > 0)
    return np.where(positives[:, 0] > 0, np.sum(recall_steps * precision, axis=1), 0.0)


def _shared(champion: Window, challenger: Window) -> tuple[Any, Any, Any]:
    _, i, j = np.intersect1d(champion[0], challenger[0], return_indices=True)
    return champion[1][i], champion[2][i], challenger[2][j]


def _win_share(y: Any, s_champion: Any, s_challenger: Any, policy: PromotionPolicy) -> float:
    rng = np.random.default_rng(policy.seed)
    n, wins = len(y), 0
    for start in range(0, policy.resamples, _CHUNK):
        size = min(_CHUNK, policy.resamples - start)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=size)
        better = weighted_ap(y, s_challenger, counts) > weighted_ap(y, s_champion, counts)
        wins += int(np.sum(better))
    return wins / policy.resamples


def _judge(
    policy: PromotionPolicy, champion: str, name: str, pair: tuple[Any, Any, Any]
) -> tuple[bool, str, dict[str, Any]]:
    y, s_champion, s_challenger = pair
    n = len(y)
    numbers: dict[str, Any] = {"challenger": name, "labels": n, "frauds": int(y.sum())}
    if n < policy.min_labels:
        return False, f"{name}: only {n} shared labels (needs {policy.min_labels})", numbers
    if y.all() or not y.any():
        return False, f"{name}: the {n} shared labels hold a single class", numbers
    base = average_precision(y, s_champion) or 0.0
    ap = average_precision(y, s_challenger) or 0.0
    share = _win_share(y, s_champion, s_challenger, policy)
    numbers |= {"champion_ap": base, "challenger_ap": ap, "gain": ap - base}
    numbers["bootstrap_win_share"] = share
    good = ap - base >= policy.margin and share >= policy.confidence
    text = (
        f"{name}: AP {ap:.4f} vs champion {champion} {base:.4f} on {n} shared labels "
        f"(gain {ap - base:+.4f}, needs {policy.margin}); better in {share:.0%} of "
        f"{policy.resamples} paired resamples (needs {policy.confidence:.0%})"
    )
    return good, text, numbers


def decide(
    policy: PromotionPolicy,
    champion: str,
    windows: Mapping[str, Window],
    at: datetime | None = None,
) -> PolicyDecision:
    """Judge every challenger against the champion on their shared labels."""
    judged = []
    for name, window in windows.items():
        if name != champion:
            judged.append(_judge(policy, champion, name, _shared(windows[champion], window)))
    names = tuple(numbers["challenger"] for _, _, numbers in judged)
    if not judged:
        return PolicyDecision(False, champion, None, "no challenger to compare", at=at)
    winners = [j for j in judged if j[0]]
    if winners:
        _, text, numbers = max(winners, key=lambda j: j[2]["gain"])
        challenger = numbers["challenger"]
        return PolicyDecision(True, champion, challenger, f"promote {text}", numbers, names, at)
    _, text, numbers = max(judged, key=lambda j: j[2].get("gain", -np.inf))
    summary = "keep champion: " + "; ".join(t for _, t, _ in judged)
    return PolicyDecision(False, champion, numbers["challenger"], summary, numbers, names, at)
