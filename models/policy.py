"""Automatic promotion policy: a challenger must win clearly, on enough shared labels.

A challenger replaces the champion when, over the labels both scored, its average precision
beats the champion's by at least ``margin``, on at least ``min_labels`` labels, and a paired
bootstrap (resampling the shared labels, seeded) finds it better in at least ``confidence`` of
the resamples. Every decision — promote or not — comes with the numbers that made it.

>>> policy = PromotionPolicy(min_labels=4, margin=0.0, resamples=50)
>>> shared = [(True, {"a": 0.2, "b": 0.9}), (False, {"a": 0.8, "b": 0.1})] * 10
>>> decision = paired_decision(policy, "a", shared)
>>> decision.promote, decision.challenger
(True, 'b')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.metrics import average_precision


@dataclass(frozen=True)
class PromotionPolicy:
    enabled: bool = False
    min_labels: int = 2000
    margin: float = 0.02
    confidence: float = 0.95
    resamples: int = 200
    seed: int = 7


@dataclass(frozen=True)
class PolicyDecision:
    promote: bool
    challenger: str | None
    explanation: str
    numbers: dict[str, Any] = field(default_factory=dict)


def paired_decision(
    policy: PromotionPolicy, champion: str, shared: Sequence[tuple[bool, dict[str, float]]]
) -> PolicyDecision:
    n = len(shared)
    if n < policy.min_labels:
        return PolicyDecision(
            False, None, f"only {n} shared labels (< {policy.min_labels})", {"labels": n}
        )
    y = np.array([label for label, _ in shared], dtype=bool)
    if y.sum() == 0 or y.all():
        return PolicyDecision(False, None, "shared labels hold a single class", {"labels": n})
    names = list(shared[0][1])
    scores = {name: np.array([s[name] for _, s in shared]) for name in names}
    base = average_precision(y, scores[champion]) or 0.0
    best: PolicyDecision | None = None
    rng = np.random.default_rng(policy.seed)
    draws = rng.integers(0, n, size=(policy.resamples, n))
    for name in names:
        if name == champion:
            continue
        ap = average_precision(y, scores[name]) or 0.0
        wins = sum(
            (average_precision(y[d], scores[name][d]) or 0.0)
            > (average_precision(y[d], scores[champion][d]) or 0.0)
            for d in draws
        )
        share = wins / policy.resamples
        numbers = {
            "labels": n,
            "champion_ap": base,
            "challenger_ap": ap,
            "bootstrap_win_share": share,
        }
        good = ap - base >= policy.margin and share >= policy.confidence
        text = (
            f"{name}: AP {ap:.4f} vs champion {champion} {base:.4f} on {n} shared labels; "
            f"better in {share:.0%} of {policy.resamples} paired resamples "
            f"(needs margin {policy.margin} and {policy.confidence:.0%})"
        )
        decision = PolicyDecision(good, name, text, numbers)
        if (
            best is None
            or (good and not best.promote)
            or (good == best.promote and ap > best.numbers["challenger_ap"])
        ):
            best = decision
    return best or PolicyDecision(False, None, "no challenger", {"labels": n})
