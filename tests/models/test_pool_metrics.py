"""models/: exact rolling metrics, guards, learning once, promotion, policy, drift, snapshots."""

from __future__ import annotations

import doctest
import importlib
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from models import metrics, pool, snapshot, zoo

FEATURES = ["amount", "card_count_1d", "card_amount_to_mean_30d", "merchant_fraud_ratio_7d"]


def stream(n: int, seed: int = 3) -> list[tuple[dict[str, float], bool]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fraud = rng.random() < 0.05
        x = {
            "amount": rng.lognormvariate(4 + (1.5 if fraud else 0), 1),
            "card_count_1d": rng.randint(0, 10) + (5 if fraud else 0),
            "card_amount_to_mean_30d": rng.random() * (6 if fraud else 2),
            "merchant_fraud_ratio_7d": rng.random() * (0.5 if fraud else 0.05),
        }
        out.append((x, fraud))
    return out


@pytest.mark.parametrize(
    "module", ["metrics", "pool", "zoo", "snapshot", "drift", "policy", "guard", "preprocess"]
)
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(f"models.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("seed", range(5))
def test_rolling_auc_and_ap_equal_sklearn_on_the_window(seed: int) -> None:
    rng = np.random.default_rng(seed)
    quality = metrics.RollingQuality(window=500)
    labels = rng.random(1500) < 0.1
    scores = np.round(np.clip(rng.normal(0.3 + 0.3 * labels, 0.2), 0, 1), 2)  # rounding makes ties
    for y, s in zip(labels, scores, strict=True):
        quality.update(bool(y), float(s))
    snap = quality.snapshot()
    assert snap["window_labels"] == 500 and snap["labels"] == 1500
    assert snap["roc_auc"] == pytest.approx(roc_auc_score(labels[-500:], scores[-500:]), abs=1e-6)
    assert snap["average_precision"] == pytest.approx(
        average_precision_score(labels[-500:], scores[-500:]), abs=1e-6
    )
    clipped = np.clip(scores[-500:], 1e-15, 1 - 1e-15)
    expected_loss = -np.mean(np.where(labels[-500:], np.log(clipped), np.log(1 - clipped)))
    assert snap["log_loss"] == pytest.approx(expected_loss, rel=1e-9)


def test_single_class_window_has_no_auc() -> None:
    assert metrics.roc_auc(np.array([False, False]), np.array([0.1, 0.2])) is None
    assert metrics.average_precision(np.array([False]), np.array([0.1])) is None


def new_pool(*names: str) -> pool.ModelPool:
    return pool.ModelPool([zoo.ZOO[n] for n in names], champion=names[0])


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(st.dictionaries(st.sampled_from([*FEATURES, "junk"]), values), min_size=1, max_size=8)
)
def test_any_input_keeps_every_probability_finite(batch: list[dict[str, object]]) -> None:
    models = new_pool("logreg", "hat")
    for x, y in stream(50):
        models.learn(x, y, {})
    for features in batch:
        for s in models.score(features):
            assert math.isfinite(s.score) and 0.0 <= s.score <= 1.0
        models.learn(features, True, {})
    for x, _ in stream(20, seed=9):
        assert all(math.isfinite(s.score) for s in models.score(x))


def test_learning_updates_metrics_from_the_scores_given_at_scoring_time() -> None:
    models = new_pool("logreg", "hat")
    models.learn({"amount": 1.0}, True, {"logreg": 0.9})
    by_name = {row["name"]: row for row in models.status()}
    assert by_name["logreg"]["labels"] == 1 and by_name["logreg"]["learned"] == 1
    assert by_name["hat"]["labels"] == 0 and by_name["hat"]["learned"] == 1  # learned, not judged


def test_online_models_learn_a_separable_signal() -> None:
    models = new_pool("arf", "logreg", "hat")
    for x, y in stream(3000):
        scored = {s.name: s.score for s in models.score(x)}
        models.learn(x, y, scored)
    for row in models.status():
        assert row["roc_auc"] is not None and row["roc_auc"] > 0.8, row["name"]


def test_promotion_records_both_sides_and_refuses_nonsense() -> None:
    models = new_pool("logreg", "hat")
    record = models.promote("hat", "better AP")
    assert (record.from_model, record.to_model, record.reason) == ("logreg", "hat", "better AP")
    assert models.champion == "hat" and models.score({})[0].name == "hat"
    with pytest.raises(pool.AlreadyChampion):
        models.promote("hat", "again")
    with pytest.raises(pool.UnknownModel):
        models.promote("ghost", "x")


def test_policy_explains_and_promotes_only_a_clear_winner() -> None:
    models = pool.ModelPool(
        [zoo.ZOO["logreg"], zoo.ZOO["hat"]],
        champion="hat",
        policy=pool.PromotionPolicy(min_labels=200, margin=0.05, resamples=100),
    )
    early = models.evaluate_policy()
    assert not early.promote and "shared labels" in early.explanation
    for x, y in stream(2000):
        models.learn(x, y, {"hat": 0.5, "logreg": 0.9 if y else 0.1})
    decision = models.evaluate_policy()
    assert decision.promote and decision.challenger == "logreg"
    assert decision.numbers["bootstrap_win_share"] >= 0.95
    assert "logreg" in decision.explanation


def test_drift_monitor_flags_a_change_in_error() -> None:
    models = new_pool("logreg")
    for _ in range(500):
        models.learn({"amount": 1.0}, False, {"logreg": 0.02})
    assert models.status()[0]["drift"]["drifts"] == 0
    for _ in range(500):
        models.learn({"amount": 1.0}, True, {"logreg": 0.02})
    assert models.status()[0]["drift"]["drifts"] >= 1


def test_explain_names_the_unusual_features() -> None:
    models = new_pool("logreg")
    for x, y in stream(2000):
        models.learn(x, y, {})
    odd = {
        "amount": 50_000.0,
        "card_count_1d": 3,
        "card_amount_to_mean_30d": 9.0,
        "merchant_fraud_ratio_7d": 0.01,
    }
    reasons = models.explain(odd)
    assert 1 <= len(reasons) <= 3
    assert all(r.code in (f"{r.feature}_high", f"{r.feature}_low") for r in reasons)
    assert all(r.value == pytest.approx(odd[r.feature]) for r in reasons)
    assert reasons[0].feature in {"amount", "card_amount_to_mean_30d"}


@pytest.mark.parametrize("name", ["logreg", "hat", "arf"])
def test_snapshot_round_trip_predicts_and_learns_identically(name: str) -> None:
    events = stream(5000, seed=11)
    original = new_pool(name)
    for x, y in events[:4000]:
        original.learn(x, y, {name: original.score(x)[0].score})
    blob = original.snapshot(name, "fs", last_seq=4000)
    restored = new_pool(name)
    assert restored.restore(name, blob, "fs") == 4000
    probe = [x for x, _ in events[4000:4200]]
    assert [original.score(x)[0].score for x in probe] == [
        restored.score(x)[0].score for x in probe
    ]
    for x, y in events[4000:]:
        original.learn(x, y, {name: 0.5})
        restored.learn(x, y, {name: 0.5})
    assert [original.score(x)[0].score for x in probe] == [
        restored.score(x)[0].score for x in probe
    ]
    assert original.status()[0]["metrics"] == restored.status()[0]["metrics"]


def test_snapshot_mismatch_is_refused_loudly() -> None:
    models = new_pool("logreg")
    blob = models.snapshot("logreg", "fs-a", last_seq=1)
    with pytest.raises(snapshot.SnapshotMismatch, match="feature set"):
        new_pool("logreg").restore("logreg", blob, "fs-b")
    meta, _, body = blob.partition(b"\n--\n")
    forged = meta.replace(snapshot.RIVER_VERSION.encode(), b"0.0.1") + b"\n--\n" + body
    with pytest.raises(snapshot.SnapshotMismatch, match="river"):
        new_pool("logreg").restore("logreg", forged, "fs-a")
