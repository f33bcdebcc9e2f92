"""Offline evaluation: prequential online runs and the weekly-retrained batch baseline."""

from __future__ import annotations

import numpy as np
import pytest
from mstreams import stream
from sklearn.metrics import average_precision_score, roc_auc_score

from models import evaluation, zoo
from models.evaluation import WEEK, Event


def events_from(n: int, per_day: int = 200, delay_days: float = 7.0, seed: int = 3) -> list[Event]:
    """Transactions spread over days, each labelled ``delay_days`` later, in time order."""
    out = []
    for i, (x, y) in enumerate(stream(n, seed=seed)):
        t = i * 86_400.0 / per_day
        out.append(Event("tx", f"t{i}", t, x, tag="fraud" if y else None))
        out.append(Event("label", f"t{i}", t + delay_days * 86_400.0, label=y))
    return sorted(out, key=lambda e: (e.time, e.kind != "tx"))


def test_online_run_scores_before_learning_and_learns_each_label_once() -> None:
    events = [
        Event("tx", "a", 0.0, {"x": 1.0}),
        Event("label", "a", 1.0, label=True),
        Event("label", "a", 2.0, label=False),  # a flip: learned once, first label kept
        Event("label", "ghost", 3.0, label=True),  # never scored: ignored
        Event("tx", "a", 4.0, {"x": 9.0}),  # a duplicate delivery: not scored again
    ]
    run = evaluation.run_online(events, zoo.ZOO["logreg"])
    assert run.labels.tolist() == [True] and run.scores.tolist() == [0.5]
    assert run.transactions == 1 and run.events == 5


def test_rows_agree_with_scikit_learn_on_the_whole_stream_and_the_second_half() -> None:
    run = evaluation.run_online(events_from(3000), zoo.ZOO["logreg"])
    row = evaluation.row(run)
    assert row.average_precision == pytest.approx(average_precision_score(run.labels, run.scores))
    assert row.roc_auc == pytest.approx(roc_auc_score(run.labels, run.scores))
    late = run.order >= run.transactions // 2
    expected = average_precision_score(run.labels[late], run.scores[late])
    assert row.average_precision_last_half == pytest.approx(expected)
    assert row.labels == len(run.labels) and row.events_per_second is not None
    assert row.roc_auc is not None and row.roc_auc > 0.8


def test_weekly_batch_scores_each_week_with_a_model_frozen_at_its_start() -> None:
    events = events_from(3000, per_day=100)
    run = evaluation.run_weekly_batch(events, model="logreg")
    first_weeks = run.order < 100 * 14  # labels arrive after a week: no model before week 2
    assert np.all(run.scores[first_weeks] == 0.0)
    assert np.all((run.scores >= 0) & (run.scores <= 1))
    later = ~first_weeks
    assert roc_auc_score(run.labels[later], run.scores[later]) > 0.8
    assert run.name == "batch_logreg_weekly"


def test_weekly_batch_never_sees_a_label_from_the_future() -> None:
    # Labels of the first week arrive in the third week: the week-2 model has nothing
    # to learn from and must still score zero.
    events = events_from(1500, per_day=50, delay_days=14.0)
    run = evaluation.run_weekly_batch(events, model="logreg")
    week_of = run.order * 86_400.0 / 50 // WEEK
    assert np.all(run.scores[week_of < 2] == 0.0)
    assert np.any(run.scores[week_of >= 3] > 0.0)


def test_the_table_has_a_row_per_model_and_the_baseline() -> None:
    rows = evaluation.evaluate(events_from(1500), [zoo.ZOO["logreg"]], baseline="logreg")
    assert [r.model for r in rows] == ["logreg", "batch_logreg_weekly"]
    text = evaluation.format_table(rows)
    assert "logreg" in text and "AP 2nd" in text and text.count("\n") == 2
