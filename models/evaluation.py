"""Offline evaluation: replay a stream prequentially and compare with a weekly batch model.

The input is an iterable of :class:`Event` in arrival order: transactions with the features
the service would have computed (``features.reference`` does that offline), and labels.
Every online model scores each transaction before learning anything about it, and learns a
label from the features stored when its transaction was scored, exactly as the service
does. The batch baseline is retrained at the start of every simulated week on
all labels known by then and scores that week with the frozen model: what a team retraining
weekly would ship. Metrics use the label each transaction eventually received.

:func:`evaluate` reports, per model: ROC AUC and AP over the stream and its second half,
precision and recall at the thresholds, the expected calibration error (15 bins) and the
card precision@100 per day (when events carry ``card``) over the second half, events/s and
the pickled model's bytes at the end. A stacked model's members get rows of their own, from
the scores they gave inside the stack in the same replay. Baselines (``baseline="hgb"``):
LightGBM retrained daily and weekly on the last 28 days, and the historical weekly
gradient boosting on every label, all on the features stored at scoring time.

>>> events = [Event("tx", "a", 0.0, {"x": 1.0}), Event("tx", "b", 1.0, {"x": 5.0}),
...           Event("label", "a", 2.0, label=False), Event("label", "b", 3.0, label=True)]
>>> run = run_online(events, zoo.ZOO["logreg"])
>>> run.labels.tolist(), run.name
([False, True], 'logreg')
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from models import guard, metrics, pool, zoo
from models.stream import Event as Event
from models.stream import Run as Run
from models.stream import make_run

DAY = 86_400.0
WEEK = 7 * DAY


@dataclass(frozen=True)
class Row:
    """One line of the evaluation table (None where a metric is undefined)."""

    model: str
    labels: int
    frauds: int
    roc_auc: float | None
    average_precision: float | None
    roc_auc_last_half: float | None
    average_precision_last_half: float | None
    precision_review: float | None
    recall_review: float | None
    precision_decline: float | None
    recall_decline: float | None
    events_per_second: float | None
    ece_last_half: float | None = None
    card_precision_100_last_half: float | None = None
    model_bytes: int | None = None
    #: AP over the transactions of the stream's first 7 days (a fresh install's first week)
    average_precision_first_week: float | None = None


class _Tx(NamedTuple):
    features: Mapping[str, float]
    score: float
    parts: dict[str, float] | None
    rank: int
    time: float
    card: str


def run_online(
    events: Iterable[Event], spec: zoo.ModelSpec, thresholds: pool.Thresholds | None = None
) -> Run:
    """Prequential replay of one model through a :class:`~models.pool.ModelPool`."""
    return run_online_all(events, spec, thresholds, parts=False)[0]


def run_online_all(
    events: Iterable[Event],
    spec: zoo.ModelSpec,
    thresholds: pool.Thresholds | None = None,
    parts: bool = True,
) -> list[Run]:
    """Like :func:`run_online`; for a stacked model also one run per member (``stack.name``).

    The stack learns from the member scores stored at scoring time, and each member's run
    is judged on those same scores (an abstaining member scores 0 in its own run).
    """
    models = pool.ModelPool([spec], champion=spec.name, thresholds=thresholds)
    stored: dict[str, _Tx] = {}
    outcome: dict[int, tuple[bool, float]] = {}
    member_outcome: dict[str, dict[int, tuple[bool, float]]] = {}
    meta: dict[int, tuple[float, str]] = {}
    learned: set[str] = set()
    count = n_events = 0
    started = time.perf_counter()
    for event in events:
        n_events += 1
        if event.kind == "tx" and event.key not in stored and event.key not in learned:
            given = models.score(event.features or {})[0]
            card = event.card or ""
            stored[event.key] = _Tx(
                event.features or {}, given.score, given.parts, count, event.time, card
            )
            count += 1
        elif event.kind == "label" and event.key in stored:
            # a label is learned once; later flips are ignored (and the features forgotten)
            tx = stored.pop(event.key)
            learned.add(event.key)
            if tx.rank not in outcome:
                label = bool(event.label)
                stored_parts = {spec.name: tx.parts} if tx.parts is not None else None
                models.learn(tx.features, label, {spec.name: tx.score}, stored_parts, event.time)
                outcome[tx.rank] = (label, tx.score)
                meta[tx.rank] = (tx.time, tx.card)
                if parts and tx.parts is not None:
                    for name in getattr(models.members[spec.name].model, "members", {}):
                        scored_by = member_outcome.setdefault(f"{spec.name}.{name}", {})
                        scored_by[tx.rank] = (label, tx.parts.get(name, 0.0))
    model = models.members[spec.name].model
    for wait in [getattr(model, "wait", None)]:
        if wait is not None:
            wait()
    seconds = time.perf_counter() - started
    size = len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    runs = [make_run(spec.name, outcome, count, n_events, seconds, meta, size)]
    sizes = {
        name: len(pickle.dumps(member, protocol=pickle.HIGHEST_PROTOCOL))
        for name, member in getattr(model, "members", {}).items()
    }
    for name, member_runs in member_outcome.items():
        size_of = sizes.get(name.split(".", 1)[1])
        runs.append(make_run(name, member_runs, count, n_events, math.nan, meta, size_of))
    return runs


Batch = Literal["hgb", "logreg", "lgbm"]


def run_weekly_batch(events: Iterable[Event], model: Batch = "hgb", seed: int = 0) -> Run:
    """Batch baseline retrained weekly on every label known at the start of the week.

    Transactions before the first retraining with both classes score 0. Needs scikit-learn
    (a development dependency), imported here only.
    """
    from models import _batch  # lazily: scikit-learn is not a runtime dependency

    return _batch.periodic(events, model=model, seed=seed, period=WEEK)


def run_batch(
    events: Iterable[Event],
    model: Batch = "lgbm",
    period: float = DAY,
    window: float | None = 28 * DAY,
    seed: int = 0,
) -> Run:
    """Batch baseline retrained every ``period`` on the labels known by then whose
    transactions fall in the last ``window`` seconds (None: all), from the stored features.
    """
    from models import _batch

    return _batch.periodic(events, model=model, seed=seed, period=period, window=window)


def row(run: Run, thresholds: pool.Thresholds | None = None, timed: bool = True) -> Row:
    """Metrics of one run over the whole stream and over its second half."""
    limits = thresholds or pool.Thresholds()
    late = run.order >= run.transactions // 2
    review = metrics.ThresholdCounts.of(limits.review, run.labels, run.scores)
    decline = metrics.ThresholdCounts.of(limits.decline, run.labels, run.scores)
    card_precision = None
    known_cards = run.cards is not None and bool((run.cards != "").any())
    if run.times is not None and run.cards is not None and known_cards and late.any():
        days = (run.times[late] // DAY).astype(np.int64)
        card_precision = metrics.card_precision_at_k(
            days, run.cards[late], run.labels[late], run.scores[late], k=100
        )
    rate = timed and math.isfinite(run.seconds) and run.seconds > 0
    first_week = None
    if run.times is not None and len(run.times):
        early = run.times < run.times.min() + WEEK
        first_week = metrics.average_precision(run.labels[early], run.scores[early])
    return Row(
        model=run.name,
        labels=len(run.labels),
        frauds=int(run.labels.sum()),
        roc_auc=metrics.roc_auc(run.labels, run.scores),
        average_precision=metrics.average_precision(run.labels, run.scores),
        roc_auc_last_half=metrics.roc_auc(run.labels[late], run.scores[late]),
        average_precision_last_half=metrics.average_precision(run.labels[late], run.scores[late]),
        precision_review=review.precision,
        recall_review=review.recall,
        precision_decline=decline.precision,
        recall_decline=decline.recall,
        events_per_second=run.events / run.seconds if rate else None,
        ece_last_half=metrics.expected_calibration_error(run.labels[late], run.scores[late]),
        card_precision_100_last_half=card_precision,
        model_bytes=run.model_bytes,
        average_precision_first_week=first_week,
    )


#: The batch baselines of ``baseline="hgb"`` (the default): LightGBM with the booster's
#: parameters retrained daily and weekly on the last 28 days, and the historical weekly
#: gradient boosting on every label known.
DEFAULT_BATCH: tuple[tuple[str, Batch, float, float | None], ...] = (
    ("batch_lgbm_daily", "lgbm", DAY, 28 * DAY),
    ("batch_lgbm_weekly", "lgbm", WEEK, 28 * DAY),
    ("batch_hgb_weekly", "hgb", WEEK, None),
)


def evaluate(
    events: Sequence[Event],
    specs: Iterable[zoo.ModelSpec],
    baseline: Literal["hgb", "logreg", "lgbm", "none"] = "hgb",
    thresholds: pool.Thresholds | None = None,
    members: bool = True,
) -> list[Row]:
    """The evaluation table: one row per online model (and per member of a stack, from the
    same replay), then the batch baselines: with ``baseline="hgb"`` all of
    :data:`DEFAULT_BATCH`, otherwise that model retrained weekly on every label."""
    rows = []
    for spec in specs:
        for run in run_online_all(events, spec, thresholds, parts=members):
            rows.append(row(run, thresholds))
    if baseline == "hgb":
        for name, model, period, window in DEFAULT_BATCH:
            batch = run_batch(events, model=model, period=period, window=window)
            rows.append(row(dataclasses.replace(batch, name=name), thresholds, timed=False))
    elif baseline != "none":
        batch = run_weekly_batch(events, model=baseline)
        rows.append(row(batch, thresholds, timed=False))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table of :func:`evaluate`'s rows."""
    columns: list[tuple[str, str]] = [
        ("model", "model"),
        ("roc_auc", "AUC"),
        ("average_precision", "AP"),
        ("roc_auc_last_half", "AUC 2nd"),
        ("average_precision_last_half", "AP 2nd"),
        ("average_precision_first_week", "AP 7d"),
        ("precision_review", "P@rev"),
        ("recall_review", "R@rev"),
        ("precision_decline", "P@dec"),
        ("recall_decline", "R@dec"),
        ("ece_last_half", "ECE 2nd"),
        ("card_precision_100_last_half", "CP@100"),
        ("events_per_second", "events/s"),
        ("model_bytes", "MB"),
    ]
    lines = [" ".join(f"{title:>9}" for _, title in columns)]
    for r in rows:
        cells = [
            _megabytes(r.model_bytes) if key == "model_bytes" else _cell(getattr(r, key))
            for key, _ in columns
        ]
        lines.append(" ".join(f"{cell:>9}" for cell in cells))
    return "\n".join(lines)


def _megabytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.2f}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if value >= 100 else f"{value:.4f}"
    return str(value)


def clean(features: Mapping[str, object]) -> dict[str, float]:
    """The features a model sees (guarded), for baselines that must see the same inputs."""
    return guard.clean_features(features).values
