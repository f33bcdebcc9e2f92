"""The pool: scoring order and roles, fallbacks, learning once, versions, promotion, status."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from mstreams import by_cost, new_pool, stream, train
from river import base

from models import pool, zoo


class Broken(base.Classifier):
    """A classifier that fails in a configurable way (a stand-in for a buggy challenger)."""

    def __init__(self, mode: str = "raise") -> None:
        self.mode = mode

    def learn_one(self, x: dict[Any, Any], y: Any, **kwargs: Any) -> None:
        if self.mode == "raise":
            raise RuntimeError("boom")

    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> Any:
        if self.mode == "raise":
            raise RuntimeError("boom")
        if self.mode == "nan":
            return {True: float("nan"), False: float("nan")}
        if self.mode == "out_of_range":
            return {True: 1.7, False: -0.7}
        return "not a dict"


def broken_spec(mode: str) -> zoo.ModelSpec:
    return zoo.ModelSpec(f"broken_{mode}", lambda: Broken(mode), "test double", "1")


def test_champion_scores_first_and_roles_follow_promotion() -> None:
    models = new_pool("logreg", "hat", "arf")
    assert [(s.name, s.role) for s in models.score({"amount": 1.0})] == [
        ("logreg", "champion"),
        ("hat", "challenger"),
        ("arf", "challenger"),
    ]
    models.promote("arf", "test")
    assert [s.name for s in models.score({})] == ["arf", "logreg", "hat"]


@pytest.mark.parametrize("mode", ["raise", "nan", "out_of_range", "garbage"])
def test_a_broken_model_gets_the_fallback_score_and_is_counted(mode: str) -> None:
    spec = broken_spec(mode)
    models = pool.ModelPool([zoo.ZOO["logreg"], spec], champion="logreg", fallback_score=0.0)
    scores = models.score({"amount": 5.0})
    assert scores[1].score == 0.0 and scores[1].fallback and not scores[0].fallback
    models.learn({"amount": 5.0}, True, {s.name: s.score for s in scores})
    row = {r["name"]: r for r in models.status()}[spec.name]
    assert row["errors"] == (2 if mode == "raise" else 1)
    assert row["learned"] == 1  # the label counts as seen even when learning failed
    assert {r["name"]: r for r in models.status()}["logreg"]["errors"] == 0


def test_guard_counts_dropped_and_clipped_values() -> None:
    models = new_pool("logreg")
    models.score({"a": float("nan"), "b": "x", "c": 1e300, "d": 2.0})
    models.learn({"a": float("inf")}, False, {})
    guard = models.status()[0]["guard"]
    assert guard["dropped_values"] == 3 and guard["clipped_values"] == 1
    assert models.guarded == 4


def test_learning_judges_each_model_on_its_own_scoring_time_score() -> None:
    models = new_pool("logreg", "hat")
    models.learn({"amount": 1.0}, True, {"logreg": 0.9, "ghost": 0.3})
    rows = {row["name"]: row for row in models.status()}
    assert rows["logreg"]["labels"] == 1 and rows["logreg"]["learned"] == 1
    assert rows["logreg"]["metrics"]["confusion"]["review"]["tp"] == 1  # 0.9 was the score
    assert rows["hat"]["labels"] == 0 and rows["hat"]["learned"] == 1  # learned, not judged
    models.learn({"amount": 1.0}, False, {"logreg": float("nan"), "hat": 2.0})
    rows = {row["name"]: row for row in models.status()}
    assert rows["logreg"]["labels"] == 1 and rows["hat"]["labels"] == 0  # not probabilities


def test_every_model_learns_each_label_exactly_once() -> None:
    models = new_pool("logreg", "hat", "arf")
    calls: dict[str, int] = {}
    for name, member in models.members.items():
        original = member.model.learn_one

        def counting(x: Any, y: Any, _name: str = name, _learn: Any = original) -> None:
            calls[_name] = calls.get(_name, 0) + 1
            _learn(x, y)

        member.model.learn_one = counting
    for x, y in stream(25):
        models.learn(x, y, {})
    assert calls == {"logreg": 25, "hat": 25, "arf": 25}


def test_version_changes_with_every_label() -> None:
    models = new_pool("logreg")
    spec_version = zoo.ZOO["logreg"].version
    assert models.version_of("logreg") == f"{spec_version}.0"
    models.learn({"amount": 1.0}, False, {})
    assert models.score({})[0].version == f"{spec_version}.1"


@pytest.mark.parametrize(
    ("score", "decision"),
    [(0.0, "approve"), (0.29, "approve"), (0.3, "review"), (0.79, "review"), (0.8, "decline")],
)
def test_decisions_follow_the_thresholds(score: float, decision: str) -> None:
    models = new_pool("logreg", thresholds=pool.Thresholds(review=0.3, decline=0.8))
    assert models.decide(score) == decision


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="review"):
        pool.Thresholds(review=0.9, decline=0.5)


def test_promotion_records_both_sides_and_refuses_nonsense() -> None:
    models = new_pool("logreg", "hat")
    train(models, stream(300))
    at = datetime(2026, 3, 1, tzinfo=UTC)
    record = models.promote("hat", "better AP", at=at)
    assert (record.from_model, record.to_model, record.reason) == ("logreg", "hat", "better AP")
    assert record.at == at and not record.automatic
    assert record.metrics_from["labels"] == 300 and "average_precision" in record.metrics_to
    assert models.champion == "hat" and models.score({})[0].name == "hat"
    with pytest.raises(pool.AlreadyChampion):
        models.promote("hat", "again")
    with pytest.raises(pool.UnknownModel):
        models.promote("ghost", "x")
    with pytest.raises(pool.UnknownModel):
        pool.ModelPool([zoo.ZOO["logreg"]], champion="ghost")


# the booster abstains (scores the fraud share) until its first fit: judged below
@pytest.mark.parametrize("name", by_cost(n for n in zoo.ZOO if n != "booster"))
def test_online_models_learn_a_separable_signal(name: str) -> None:
    models = new_pool(name)
    train(models, stream(3000))
    (row,) = models.status()
    assert row["roc_auc"] is not None and row["roc_auc"] > 0.8, row["name"]
    assert row["average_precision"] > 0.3, row["name"]


def test_the_booster_learns_the_signal_once_it_has_fitted() -> None:
    models = new_pool("booster", metrics_window=700)  # labels after its first publication
    train(models, stream(3000))
    (row,) = models.status()
    assert models.members["booster"].model.fits == 1
    assert row["roc_auc"] is not None and row["roc_auc"] > 0.8
    assert row["average_precision"] > 0.3


def test_status_rows_hold_what_the_api_and_prometheus_read() -> None:
    models = new_pool("logreg", "hat")
    train(models, stream(100))
    for row in models.status():
        for key in ("name", "role", "version", "learned", "labels", "roc_auc", "log_loss"):
            assert key in row
        assert set(row["confusion"]) == {"review", "decline"}
        assert {"drifts", "last_drift_at_label", "mean_error"} <= set(row["drift"])
        assert math.isfinite(row["drift"]["mean_error"])
