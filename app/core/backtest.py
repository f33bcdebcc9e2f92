"""Core (use-case): backtest a candidate rule over stored scored transactions.

The rule is evaluated on each stored transaction as it would have been when scored: the
transaction, its stored feature snapshot and the champion's stored score. List membership is
*not* historical (the lists keep no history): in a backtest every ``*_lists`` variable is the
empty list. The store streams rows in event-time order, at most ``max_rows`` of them; the
figures say whether the window was cut short (``truncated``), and whether that was the time
limit (``timed_out``: the rows of ``seconds`` of work were used).

A backtest runs on a process that scores, over up to millions of rows: each page is fetched
on the event loop (I/O) and decoded and evaluated on a worker thread, so the loop answers
between pages and, the GIL being handed over every few milliseconds, during them too; the
time limit is checked between pages. A backtest is CPU-bound work all the same: a busy
scorer should be asked for short windows (or use ``riverguard rules backtest``, a process of
its own).

Figures: ``hits`` (rows the rule matches), ``hit_rate`` (hits / rows scanned), labelled hits
and ``frauds_caught`` among them, ``precision`` (frauds caught / labelled hits; None without
labelled hits), ``model_overlap`` (hits the model had already sent to review or decline),
``hits_per_day`` (UTC day of the event time) and ``errors`` (rows where the rule failed at run
time: counted as no match, as in scoring).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from app.core.rules import UNTIMED, CompiledRule, RuleSet, context
from features.schema import Transaction

NO_LISTS: Mapping[str, tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class BacktestRow:
    """A stored scored transaction, rebuilt."""

    transaction: Transaction
    features: Mapping[str, float]
    score: float
    decision: str
    label: bool | None  # the current label (None: not labelled)


class BacktestSource(Protocol):
    def backtest_pages(
        self, since: datetime, until: datetime, limit: int
    ) -> AsyncIterator[Sequence[Any]]:
        """Pages of raw rows with ``since <= event_time < until`` in event-time order, at most
        ``limit`` rows in all."""
        ...

    def backtest_row(self, raw: Any) -> BacktestRow:
        """One raw row decoded (CPU only: called on a worker thread)."""
        ...

    async def shadow_stats(self, rule_id: str, since: datetime, until: datetime) -> BacktestResult:
        """A shadow rule's live figures over ``since <= event_time < until``, counted from the
        hits stored with each record (the backtest's figures, over what really happened)."""
        ...


@dataclass
class BacktestResult:
    since: datetime
    until: datetime
    rows_scanned: int = 0
    hits: int = 0
    labelled_hits: int = 0
    frauds_caught: int = 0
    model_overlap: int = 0
    errors: int = 0
    truncated: bool = False
    timed_out: bool = False
    hits_per_day: dict[str, int] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.rows_scanned if self.rows_scanned else 0.0

    @property
    def precision(self) -> float | None:
        return self.frauds_caught / self.labelled_hits if self.labelled_hits else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "rows_scanned": self.rows_scanned,
            "truncated": self.truncated,
            "timed_out": self.timed_out,
            "hits": self.hits,
            "hit_rate": self.hit_rate,
            "labelled_hits": self.labelled_hits,
            "frauds_caught": self.frauds_caught,
            "precision": self.precision,
            "model_overlap": self.model_overlap,
            "errors": self.errors,
            "hits_per_day": dict(sorted(self.hits_per_day.items())),
        }


def matches(rules: RuleSet, row: BacktestRow) -> tuple[bool, bool]:
    """(hit, failed) of a one-rule set on ``row``."""
    ctx = context(row.transaction, row.features, row.score, NO_LISTS)
    outcome = rules.evaluate(ctx)
    return bool(outcome.reasons), bool(outcome.errors)


async def backtest(
    rule: CompiledRule,
    source: BacktestSource,
    since: datetime,
    until: datetime,
    max_rows: int,
    *,
    seconds: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
) -> BacktestResult:
    """Evaluate ``rule`` (enabled, disabled or in shadow; saved or not) over the stored window."""
    deciding = replace(rule.rule, enabled=True, shadow=False)  # a rule is never both
    only = RuleSet([CompiledRule(deciding, rule.program)], budget=UNTIMED)
    result = BacktestResult(since=since, until=until)
    per_day: Counter[str] = Counter()
    deadline = clock() + seconds
    # one row beyond the bound tells a cut-short window from one of exactly max_rows rows
    pages = source.backtest_pages(since, until, max_rows + 1)
    async with contextlib.aclosing(pages):  # type: ignore[type-var]  # an async generator
        async for page in pages:
            room = max_rows - result.rows_scanned
            result.truncated = len(page) > room
            rows = page[:room]
            await asyncio.to_thread(_count, only, source.backtest_row, rows, result, per_day)
            if result.truncated:
                break
            if clock() > deadline:
                result.truncated = result.timed_out = True
                break
    result.hits_per_day = dict(per_day)
    return result


def _count(
    only: RuleSet,
    decode: Callable[[Any], BacktestRow],
    rows: Sequence[Any],
    result: BacktestResult,
    per_day: Counter[str],
) -> None:
    """Add a page's figures to ``result`` (on a worker thread)."""
    for raw in rows:
        row = decode(raw)
        result.rows_scanned += 1
        hit, failed = matches(only, row)
        result.errors += failed
        if not hit:
            continue
        result.hits += 1
        per_day[row.transaction.timestamp.astimezone(UTC).date().isoformat()] += 1
        result.model_overlap += row.decision in ("review", "decline")
        if row.label is not None:
            result.labelled_hits += 1
            result.frauds_caught += row.label
