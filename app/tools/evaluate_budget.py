"""What a fraud team's queue would have looked like: per-week AP and outcomes at budgets.

``riverguard evaluate`` prints these beside its table. The budget replay is causal, like the
service's decision layer: each transaction is compared with cutoffs taken from the scores of
the ``window`` transactions before it (recomputed every ``every`` transactions; the service
recomputes on a clock), and while fewer than ``min_scores`` scores are known the budget
decides nothing. Only labelled transactions are counted (a history import labels every row).

>>> import numpy as np
>>> from models.stream import Run
>>> scores = np.random.default_rng(0).permutation(np.linspace(0.0, 1.0, 2000))
>>> run = Run("m", np.arange(2000), scores > 0.99, scores, 2000, 2000, 1.0,
...           times=np.arange(2000) * 600.0)
>>> out = budget_outcome(run, review=0.02, decline=0.005, window=1000, min_scores=100, every=1)
>>> round(out.review_share, 3), round(out.decline_share, 3), out.frauds, out.caught
(0.015, 0.009, 20, 20)
>>> [(week, n) for week, n, _, _ in weekly_ap(run)]
[(0, 1008), (1, 992)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models import metrics
from models.stream import Run

WEEK = 7 * 86_400.0


@dataclass(frozen=True)
class BudgetOutcome:
    """Shares of the replayed traffic reviewed and declined, and the frauds they held."""

    model: str
    transactions: int
    review_share: float
    decline_share: float
    frauds: int
    caught: int  # frauds reviewed or declined
    caught_declined: int
    review_precision: float | None  # frauds among reviewed + declined


def budget_outcome(
    run: Run,
    review: float,
    decline: float,
    window: int = 10_000,
    min_scores: int = 1_000,
    every: int = 500,
) -> BudgetOutcome:
    """Replay the budgets over ``run`` in arrival order (see the module text)."""
    order = np.argsort(run.order, kind="stable")
    scores, labels = run.scores[order], run.labels[order]
    decisions = np.zeros(len(scores), dtype=np.int8)  # 0 approve, 1 review, 2 decline
    review_cut = decline_cut = np.inf
    for i in range(len(scores)):
        if i % every == 0:
            recent = scores[max(0, i - window) : i]
            if len(recent) >= min_scores:
                review_cut = float(np.quantile(recent, 1 - (review + decline)))
                decline_cut = float(np.quantile(recent, 1 - decline))
        if scores[i] > decline_cut:
            decisions[i] = 2
        elif scores[i] > review_cut:
            decisions[i] = 1
    flagged = decisions > 0
    n = max(len(scores), 1)
    return BudgetOutcome(
        model=run.name,
        transactions=len(scores),
        review_share=float((decisions == 1).sum()) / n,
        decline_share=float((decisions == 2).sum()) / n,
        frauds=int(labels.sum()),
        caught=int((labels & flagged).sum()),
        caught_declined=int((labels & (decisions == 2)).sum()),
        review_precision=float(labels[flagged].mean()) if flagged.any() else None,
    )


def weekly_ap(run: Run) -> list[tuple[int, int, int, float | None]]:
    """(week from the first transaction, labelled transactions, frauds, AP) per week."""
    if run.times is None or len(run.times) == 0:
        return []
    weeks = ((run.times - run.times.min()) // WEEK).astype(np.int64)
    out = []
    for week in np.unique(weeks):
        mask = weeks == week
        ap = metrics.average_precision(run.labels[mask], run.scores[mask])
        out.append((int(week), int(mask.sum()), int(run.labels[mask].sum()), ap))
    return out


def format_weekly(runs: Sequence[Run]) -> str:
    """One line per week, one AP column per model."""
    if not runs:
        return ""
    per_model = [dict((w, (n, f, ap)) for w, n, f, ap in weekly_ap(run)) for run in runs]
    weeks = sorted(set().union(*(set(m) for m in per_model)))
    width = max(9, *(len(run.name) for run in runs))
    lines = ["week  labels frauds " + " ".join(f"{run.name:>{width}}" for run in runs)]
    for week in weeks:
        n, frauds, _ = next(m[week] for m in per_model if week in m)
        cells = [_ap(m.get(week, (0, 0, None))[2]) for m in per_model]
        lines.append(
            f"{week + 1:>4} {n:>7,} {frauds:>6,} " + " ".join(f"{c:>{width}}" for c in cells)
        )
    return "\n".join(lines)


def format_budgets(outcomes: Sequence[BudgetOutcome], review: float, decline: float) -> str:
    """The queue each model would have produced at the budgets."""
    head = f"at budgets review {review:.2%}, decline {decline:.2%} (causal cutoffs)"
    lines = [head, f"{'model':>24} {'reviewed':>9} {'declined':>9} {'frauds':>7} "
                   f"{'caught':>7} {'share':>7} {'precision':>9}"]  # fmt: skip
    for o in outcomes:
        share = o.caught / o.frauds if o.frauds else float("nan")
        lines.append(
            f"{o.model:>24} {o.review_share:>9.2%} {o.decline_share:>9.2%} {o.frauds:>7,} "
            f"{o.caught:>7,} {share:>7.1%} {_ap(o.review_precision):>9}"
        )
    return "\n".join(lines)


def _ap(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
