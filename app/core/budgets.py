"""Review and decline budgets: thresholds that follow the current champion's score quantiles.

A fraud team staffs review for a share of traffic, not for a score. With a budget ("review the
riskiest 1 %, decline the riskiest 0.1 %") the cutoffs are recomputed where the models are
learned (the leading learner) and shipped to every scorer, so every process decides alike:
the learner keeps the feature snapshots of the last ``window`` stored transactions and, every
few seconds, scores them with the champion *as it is now*. Scores stored at scoring time would
not do: a young model's scores move as it learns, and quantiles of last minute's scores then
let far more than the budget through (measured: 7 % reviewed for a 2 % budget on the
simulator stream). A promotion recomputes at once with the new champion.

A cutoff never lets more than its share of the window through: with ties at the quantile
(a young model answering the same score for many transactions) it moves just above the tied
value. Below ``min_scores`` scores a budget decides nothing (cold start: nothing is reviewed
or declined by the model), so a fresh install never exceeds its budget.

>>> scores = [i / 100 for i in range(100)]
>>> budget = Budget(review=0.05, decline=0.01, window=1000, min_scores=10)
>>> c = budget.cutoffs("m", scores)
>>> sum(s >= c.decline for s in scores), sum(c.review <= s < c.decline for s in scores)
(1, 5)
>>> budget.cutoffs("m", [0.5] * 100).decide(0.5)  # ties never flood review
'approve'
>>> Budget(review=0.05, decline=None, fixed_decline=0.9, min_scores=10).cutoffs("m", []).source
'cold'
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

import numpy as np

from app.core.metrics import Metrics
from features.schema import Decision
from models import pool as model_pool

log = logging.getLogger(__name__)

Source = Literal["fixed", "budget", "cold"]
NEVER = math.inf  # a cutoff no score reaches


@dataclass(frozen=True)
class Cutoffs:
    """The score thresholds every scorer applies to the champion's score."""

    review: float
    decline: float
    source: Source = "fixed"
    champion: str = ""
    scores: int = 0  # how many scores the quantiles came from

    def decide(self, score: float) -> Decision:
        if score >= self.decline:
            return "decline"
        if score >= self.review:
            return "review"
        return "approve"

    def to_json(self) -> dict[str, object]:
        return {
            "review": _finite(self.review),
            "decline": _finite(self.decline),
            "source": self.source,
            "champion": self.champion,
            "scores": self.scores,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Cutoffs:
        def cut(key: str) -> float:
            value = data[key]
            return NEVER if value is None else float(str(value))

        source = data["source"]
        if source not in ("fixed", "budget", "cold"):
            raise ValueError(f"unknown cutoff source {source!r}")
        scores = data["scores"]
        return cls(cut("review"), cut("decline"), source, str(data["champion"]), int(str(scores)))


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def cutoff(scores: np.ndarray, share: float) -> float:
    """The lowest threshold that lets at most ``share`` of ``scores`` reach it (``>=``).

    >>> cutoff(np.array([0.1, 0.2, 0.3, 0.4]), 0.5) > 0.2, cutoff(np.array([0.1, 0.2]), 0.0)
    (True, inf)
    """
    allowed = math.floor(share * len(scores) + 1e-9)
    if allowed >= len(scores):
        return -NEVER
    if allowed <= 0:
        return NEVER
    # the (allowed+1)-th highest score must not pass: the cutoff sits just above it
    kth = np.partition(scores, len(scores) - allowed - 1)[len(scores) - allowed - 1]
    return float(np.nextafter(kth, NEVER))


@dataclass(frozen=True)
class Budget:
    """Which cutoffs to use: fixed thresholds, or shares of traffic (``None``: fixed)."""

    review: float | None = None
    decline: float | None = None
    window: int = 10_000
    min_scores: int = 1_000
    fixed_review: float = 0.5
    fixed_decline: float = 0.7

    @property
    def enabled(self) -> bool:
        return self.review is not None or self.decline is not None

    def fixed(self, champion: str = "") -> Cutoffs:
        return Cutoffs(self.fixed_review, self.fixed_decline, "fixed", champion)

    def cutoffs(
        self,
        champion: str,
        recent: Sequence[float],
        realised: Mapping[str, float] | None = None,
    ) -> Cutoffs:
        """The cutoffs from ``champion``'s scores of recent traffic.

        ``realised``: the share each decision actually had over that traffic. Where it ran
        over its budget (fraud comes in bursts), the next quantile is taken at a share cut in
        the same proportion, so an overshoot is corrected rather than repeated.
        """
        if not self.enabled:
            return self.fixed(champion)
        scores = np.asarray(recent, dtype=np.float64)
        if len(scores) < self.min_scores:
            review = NEVER if self.review is not None else self.fixed_review
            decline = NEVER if self.decline is not None else self.fixed_decline
            return Cutoffs(review, decline, "cold", champion, len(scores))
        done = realised or {}
        decline = self.fixed_decline
        if self.decline is not None:
            decline = cutoff(scores, _corrected(self.decline, done.get("decline", 0.0)))
        review = self.fixed_review
        if self.review is not None:
            stopped = self.review + (self.decline or 0.0)
            both = done.get("review", 0.0) + done.get("decline", 0.0)
            review = cutoff(scores, _corrected(stopped, both))
        return Cutoffs(min(review, decline), decline, "budget", champion, len(scores))


def _corrected(budget: float, realised: float) -> float:
    """The share to aim at next: the budget, cut by the overshoot (never below half of it)."""
    if realised <= budget:
        return budget
    return budget * max(budget / realised, 0.5)


@dataclass(frozen=True)
class RecentRow:
    """One stored transaction's feature snapshot, in (about) the order they were stored."""

    scored_at: datetime
    transaction_id: str
    features: Mapping[str, float]
    decision: str = "approve"  # as decided then


class RecentTraffic(Protocol):
    """Where the learner reads the feature snapshots of recently stored transactions."""

    async def rows_after(
        self, after: tuple[datetime, str] | None, limit: int
    ) -> list[RecentRow]: ...


class CutoffStore(Protocol):
    """Where the leader publishes the cutoffs and followers read them."""

    async def publish_cutoffs(self, blob: bytes) -> None: ...

    async def cutoffs(self) -> bytes | None: ...


#: scores feature snapshots with the current champion (the caller yields to its event loop)
Rescore = Callable[[Sequence[Mapping[str, float]]], Awaitable[Sequence[float]]]


@dataclass
class RecentWindow:
    """The last ``size`` stored transactions' features, fed in order from the store."""

    source: RecentTraffic
    size: int
    rows: deque[Mapping[str, float]] = field(default_factory=deque)
    decisions: deque[str] = field(default_factory=deque)
    cursor: tuple[datetime, str] | None = None

    def realised(self) -> dict[str, float]:
        """The share of the window each decision had when it was made."""
        n = max(len(self.decisions), 1)
        return {d: sum(1 for x in self.decisions if x == d) / n for d in ("review", "decline")}

    async def refresh(self, pages: int = 5) -> int:
        """Read what was stored since the last refresh (bounded); how many rows were read."""
        read = 0
        for _ in range(pages):
            rows = await self.source.rows_after(self.cursor, self.size)
            self.rows.extend(row.features for row in rows)
            self.decisions.extend(row.decision for row in rows)
            while len(self.rows) > self.size:
                self.rows.popleft()
                self.decisions.popleft()
            read += len(rows)
            if rows:
                self.cursor = (rows[-1].scored_at, rows[-1].transaction_id)
            if len(rows) < self.size:
                break
        return read


@dataclass
class CutoffKeeper:
    """Keeps a process's cutoffs current: the leader computes and publishes, others follow.

    The leader recomputes every ``every_seconds`` and at once when the champion changes (a
    promotion); a follower applies whatever the leader published last.
    """

    budget: Budget
    window: RecentWindow
    rescore: Rescore
    store: CutoffStore
    apply: Callable[[Cutoffs], None]
    every_seconds: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _seen: bytes | None = None
    _due: float = -NEVER
    _champion: str | None = None

    async def tick(self, leading: bool, champion: str) -> None:
        if not leading:
            blob = await self.store.cutoffs()
            if blob is not None and blob != self._seen:
                self._seen = blob
                self.apply(Cutoffs.from_json(json.loads(blob)))
            return
        if self.clock() < self._due and champion == self._champion:
            return
        self._due, self._champion = self.clock() + self.every_seconds, champion
        await self.window.refresh()
        scores = await self.rescore(list(self.window.rows))
        cut = self.budget.cutoffs(champion, scores, self.window.realised())
        self.apply(cut)
        # published every time, not only on change: a flushed Redis has them again in seconds
        self._seen = json.dumps(cut.to_json(), sort_keys=True).encode()
        await self.store.publish_cutoffs(self._seen)

    async def run(
        self, leading: Callable[[], bool], champion: Callable[[], str], every: float = 1.0
    ) -> None:
        while True:
            try:
                await self.tick(leading(), champion())
            except asyncio.CancelledError:
                raise
            except Exception:  # a dependency hiccup: keep the last cutoffs, try again
                log.exception("budget cutoffs not refreshed; keeping the last ones")
            await asyncio.sleep(every)


async def rescore(
    pool: model_pool.ModelPool, rows: Sequence[Mapping[str, float]], chunk: int = 64
) -> list[float]:
    """``pool``'s champion scores of ``rows``, yielding to the event loop between chunks."""
    out: list[float] = []
    for start in range(0, len(rows), chunk):
        await asyncio.sleep(0)
        out.extend(pool.score_champion(x) for x in rows[start : start + chunk])
    return out


def show(metrics: Metrics, cut: Cutoffs, budget: Budget) -> None:
    """The cutoffs and budgets as gauges (+Inf: the model never reviews or declines)."""
    metrics.cutoff.labels("review").set(cut.review)
    metrics.cutoff.labels("decline").set(cut.decline)
    metrics.budget.labels("review").set(budget.review or 0.0)
    metrics.budget.labels("decline").set(budget.decline or 0.0)
    metrics.budget_scores.set(cut.scores)
