"""Offline evaluation: replay a stream prequentially and compare with a weekly batch model.

The input is an iterable of :class:`Event` in arrival order: transactions with the features
the service would have computed (``features.reference`` does that offline), and labels.
Every online model scores each transaction before learning anything about it, and learns a
label from the features stored when its transaction was scored, exactly as the service
does. The batch baseline is retrained at the start of every simulated week on
all labels known by then and scores that week with the frozen model: what a team retraining
weekly would ship. Metrics use the label each transaction eventually received.

>>> events = [Event("tx", "a", 0.0, {"x": 1.0}), Event("tx", "b", 1.0, {"x": 5.0}),
...           Event("label", "a", 2.0, label=False), Event("label", "b", 3.0, label=True)]
>>> run = run_online(events, zoo.ZOO["logreg"])
>>> run.labels.tolist(), run.name
([False, True], 'logreg')
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from models import guard, metrics, pool, zoo

WEEK = 7 * 86_400.0


class Event(NamedTuple):
    """One stream event: a scored transaction (``features``) or its label (``label``).

    ``time`` is event time in seconds on any fixed origin; ``tag`` is optional ground truth
    (e.g. the fraud scenario) used only to break results down, never shown to a model.
    """

    kind: Literal["tx", "label"]
    key: str
    time: float
    features: Mapping[str, float] | None = None
    label: bool | None = None
    tag: str | None = None


@dataclass(frozen=True)
class Run:
    """Score given at scoring time and eventual label of every labelled transaction."""

    name: str
    order: npt.NDArray[np.int64]  # arrival rank of the transaction
    labels: npt.NDArray[np.bool_]
    scores: npt.NDArray[np.float64]
    transactions: int
    events: int
    seconds: float


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


def run_online(
    events: Iterable[Event], spec: zoo.ModelSpec, thresholds: pool.Thresholds | None = None
) -> Run:
    """Prequential replay of one model through a :class:`~models.pool.ModelPool`."""
    models = pool.ModelPool([spec], champion=spec.name, thresholds=thresholds)
    stored: dict[str, tuple[Mapping[str, float], float, int]] = {}
    outcome: dict[int, tuple[bool, float]] = {}
    count = n_events = 0
    started = time.perf_counter()
    for event in events:
        n_events += 1
        if event.kind == "tx" and event.key not in stored:
            score = models.score(event.features or {})[0].score
            stored[event.key] = (event.features or {}, score, count)
            count += 1
        elif event.kind == "label" and event.key in stored:
            features, score, rank = stored[event.key]
            if rank not in outcome:  # a label is learned once; later flips are ignored
                models.learn(features, bool(event.label), {spec.name: score})
                outcome[rank] = (bool(event.label), score)
    seconds = time.perf_counter() - started
    return _run(spec.name, outcome, count, n_events, seconds)


def _run(
    name: str, outcome: Mapping[int, tuple[bool, float]], count: int, n: int, seconds: float
) -> Run:
    ranks = sorted(outcome)
    return Run(
        name=name,
        order=np.array(ranks, dtype=np.int64),
        labels=np.array([outcome[r][0] for r in ranks], dtype=np.bool_),
        scores=np.array([outcome[r][1] for r in ranks], dtype=np.float64),
        transactions=count,
        events=n,
        seconds=seconds,
    )


def run_weekly_batch(
    events: Iterable[Event], model: Literal["hgb", "logreg"] = "hgb", seed: int = 0
) -> Run:
    """Batch baseline retrained weekly on every label known at the start of the week.

    Transactions before the first retraining with both classes score 0. Needs scikit-learn
    (a development dependency), imported here only.
    """
    from models import _batch  # lazily: scikit-learn is not a runtime dependency

    return _batch.weekly(events, model=model, seed=seed, week=WEEK)


def row(run: Run, thresholds: pool.Thresholds | None = None, timed: bool = True) -> Row:
    """Metrics of one run over the whole stream and over its second half."""
    limits = thresholds or pool.Thresholds()
    late = run.order >= run.transactions // 2
    review = metrics.ThresholdCounts.of(limits.review, run.labels, run.scores)
    decline = metrics.ThresholdCounts.of(limits.decline, run.labels, run.scores)
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
        events_per_second=run.events / run.seconds if timed and run.seconds > 0 else None,
    )


def evaluate(
    events: Sequence[Event],
    specs: Iterable[zoo.ModelSpec],
    baseline: Literal["hgb", "logreg", "none"] = "hgb",
    thresholds: pool.Thresholds | None = None,
) -> list[Row]:
    """The evaluation table: one row per online model, then the weekly batch baseline."""
    rows = [row(run_online(events, spec, thresholds), thresholds) for spec in specs]
    if baseline != "none":
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
        ("precision_review", "P@rev"),
        ("recall_review", "R@rev"),
        ("precision_decline", "P@dec"),
        ("recall_decline", "R@dec"),
        ("events_per_second", "events/s"),
    ]
    lines = [" ".join(f"{title:>9}" for _, title in columns)]
    for r in rows:
        lines.append(" ".join(f"{_cell(getattr(r, key)):>9}" for key, _ in columns))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if value >= 100 else f"{value:.4f}"
    return str(value)


def clean(features: Mapping[str, object]) -> dict[str, float]:
    """The features a model sees (guarded), for baselines that must see the same inputs."""
    return guard.clean_features(features).values
