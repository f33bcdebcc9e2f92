"""The stacked champion's parts: windowed booster, bounded forest, stack, calibration metrics."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import numpy as np
import pytest
from mstreams import new_pool, stream, train
from river import forest, linear_model

from models import booster as booster_module
from models import metrics
from models.booster import DAY, WindowedBooster
from models.bounded import Bounded
from models.stack import Stack, logit


def _fed(booster: WindowedBooster, n: int, seed: int = 3) -> WindowedBooster:
    for x, y in stream(n, seed=seed):
        booster.learn_one(x, y)
    return booster


def test_booster_abstains_until_its_first_fit_then_ranks_fraud_first() -> None:
    booster = WindowedBooster(n_trees=50, refit_every=1000, publish_after=0, min_frauds=5)
    _fed(booster, 999)
    assert booster.abstains() and booster.fits == 0
    assert booster.predict_proba_one({"amount": 1.0})[True] == booster.prior()
    _fed(booster, 1, seed=4)
    assert not booster.abstains() and booster.fits == 1
    probe = stream(2000, seed=9)
    y = np.array([label for _, label in probe])
    s = np.array([booster.predict_proba_one(x)[True] for x, _ in probe])
    assert metrics.roc_auc(y, s) is not None and metrics.roc_auc(y, s) > 0.9  # type: ignore[operator]


def test_background_fit_is_published_after_a_fixed_number_of_labels() -> None:
    booster = WindowedBooster(n_trees=50, refit_every=1000, publish_after=300, min_frauds=5)
    _fed(booster, 1000)
    assert booster.abstains() and booster._fit is not None  # fitting beside learning
    _fed(booster, 299, seed=5)
    assert booster.abstains()  # not before its publication label, however fast the fit
    _fed(booster, 1, seed=6)
    assert not booster.abstains() and booster.fits == 1


def test_a_booster_that_does_not_wait_publishes_once_the_fit_is_done() -> None:
    booster = WindowedBooster(
        n_trees=50, refit_every=1000, publish_after=1, min_frauds=5, wait_for_fit=False
    )
    _fed(booster, 1000)
    fit = booster._fit
    assert fit is not None and fit.thread is not None
    fit.thread.join()  # the fit is done: the next label publishes it
    _fed(booster, 1, seed=5)
    assert not booster.abstains() and booster.fits == 1


def test_between_labels_a_booster_that_does_not_wait_publishes_its_finished_fit() -> None:
    """The end of a burst (a backfill): the fit started 100 labels before its last label is
    published by settle, with no more labels; then a due fit starts on the whole window."""
    booster = WindowedBooster(n_trees=50, refit_every=1000, publish_after=300, min_frauds=5,
                              legit_share=1.0, wait_for_fit=False)  # fmt: skip
    _fed(booster, 1100)
    fit = booster._fit
    assert fit is not None and fit.thread is not None and booster.abstains()
    assert booster.state()["fitting"] and booster.state()["settling"]
    fit.thread.join()
    assert booster.settle()  # publishes the fit started at label 1000
    state = booster.state()
    assert state["fitted"] and state["fits"] == 1 and state["fitted_labels"] == 1000
    assert not state["fitting"] and state["window_rows"] == 1100
    assert 0 < state["window_frauds"] < state["fitted_rows"] == 1000
    assert not booster.settle()  # nothing finished, nothing due: no change


def test_settle_starts_a_fit_that_fell_due_while_one_ran() -> None:
    booster = WindowedBooster(
        n_trees=50, refit_every=200, publish_after=1000, min_frauds=5, wait_for_fit=False
    )
    _fed(booster, 500)  # the fit started at 200 is not published by a label: the next one waits
    assert booster._fit is not None
    booster._fit.thread.join()  # type: ignore[union-attr]
    assert booster.settle() and booster.state()["fitted_labels"] == 200
    assert booster.state()["fitting"]  # due at 500 labels: started between labels
    booster._fit.thread.join()  # type: ignore[union-attr]
    assert booster.settle() and booster.state()["fitted_labels"] == 500
    assert not booster.state()["fitting"]


def test_settle_never_changes_a_booster_that_waits_for_its_publication_label() -> None:
    booster = WindowedBooster(n_trees=50, refit_every=1000, publish_after=300, min_frauds=5)
    _fed(booster, 1100)
    booster._fit.thread.join()  # type: ignore[union-attr]
    assert not booster.settle() and booster.abstains()  # replays stay reproducible
    assert booster.state()["fitting"] and not booster.state()["settling"]


def test_background_fits_are_reproducible() -> None:
    def run() -> list[float]:
        booster = WindowedBooster(n_trees=50, refit_every=700, publish_after=200, min_frauds=5)
        _fed(booster, 3000)
        return [booster.predict_proba_one(x)[True] for x, _ in stream(200, seed=9)]

    assert run() == run()


def test_booster_snapshot_never_waits_for_a_fit_and_the_restored_one_refits() -> None:
    booster = WindowedBooster(n_trees=50, refit_every=1000, publish_after=300, min_frauds=5)
    _fed(booster, 1000)
    assert booster._fit is not None
    restored = pickle.loads(pickle.dumps(booster))
    assert booster._fit is not None  # the original's fit goes on, published on schedule
    assert restored._fit is None and restored.abstains()
    _fed(restored, 1, seed=5)
    assert restored._fit is not None  # due at once: the fit starts again
    _fed(restored, 300, seed=6)
    _fed(booster, 300, seed=6)
    assert not restored.abstains() and not booster.abstains()
    fitted = pickle.loads(pickle.dumps(booster))
    probe = [x for x, _ in stream(200, seed=9)]
    assert [booster.predict_proba_one(x) for x in probe] == [
        fitted.predict_proba_one(x) for x in probe
    ]


def test_booster_window_is_bounded_by_rows_and_by_label_time() -> None:
    never: dict[str, Any] = {"refit_every": 10**9, "first_fit_after": 10**9}
    booster = WindowedBooster(max_rows=100, legit_share=1.0, **never)
    _fed(booster, 1000)
    assert len(booster._rows) == 100
    timed = WindowedBooster(window_days=2.0, legit_share=1.0, **never)
    for i, (x, y) in enumerate(stream(100)):
        timed.learn_one(x, y, t=i * DAY / 10)  # ten labels a day
    assert len(timed._rows) == 21  # the last two days and the label at the horizon


def test_booster_keeps_every_fraud_and_a_share_of_legitimate_rows() -> None:
    booster = WindowedBooster(legit_share=0.1, refit_every=10**9, first_fit_after=10**9)
    events = stream(5000)
    _fed(booster, 5000)
    kept = [label for _, _, label in booster._rows]
    assert sum(kept) == sum(y for _, y in events)
    legit = len(kept) - sum(kept)
    assert 0.07 * 4750 < legit < 0.13 * 4750


def test_bounded_forest_stops_growing_where_the_plain_one_does_not() -> None:
    def forest_of(bounded: bool) -> object:
        arf = forest.ARFClassifier(n_models=3, max_size=0.05, max_share_to_split=1.0, seed=1)
        model = Bounded(arf, check_every=200) if bounded else arf
        for x, y in stream(4000, seed=2):
            model.learn_one(x, y)
        return model

    plain, bounded = forest_of(False), forest_of(True)
    assert isinstance(bounded, Bounded) and bounded.checks == 20
    assert any(tree._n_inactive_leaves > 0 for tree in bounded.trees())
    assert len(pickle.dumps(bounded)) < 0.7 * len(pickle.dumps(plain))


def _two_members() -> Stack:
    return Stack(
        {"a": linear_model.LogisticRegression(), "b": linear_model.LogisticRegression()},
        memory=10**6,
    )


def test_stack_learns_from_the_member_scores_given_at_scoring_time() -> None:
    stack = _two_members()
    rng = np.random.default_rng(1)
    for _ in range(3000):
        y = bool(rng.random() < 0.05)
        # "a" was right when it scored, "b" was noise; the members' current views are moot
        parts = {"a": 0.9 if y else 0.02, "b": float(rng.uniform(0.01, 0.99))}
        stack.learn_one({"x": 0.0}, y, parts=parts)
    assert stack.fallbacks == 0
    w = stack.meta.w
    assert w[1] > 0.5 and w[1] > 3 * abs(w[2])
    assert stack.combine({"a": 0.9, "b": 0.5}) > 0.9 > 0.1 > stack.combine({"a": 0.02, "b": 0.5})


def test_stack_without_stored_scores_falls_back_and_counts_it() -> None:
    stack = _two_members()
    stack.learn_one({"x": 1.0}, True)
    assert stack.fallbacks == 1 and stack.labels == 1


def test_prior_correction_maps_a_rebalanced_members_odds_to_the_live_prior() -> None:
    members = {"rebalanced": linear_model.LogisticRegression()}
    members["plain"] = linear_model.LogisticRegression()
    stack = Stack(members, fraud_shares={"rebalanced": 0.5})
    for i in range(1000):
        stack.learn_one({"x": 0.0}, i % 100 == 0, parts={"rebalanced": 0.5, "plain": 0.5})
    z_rebalanced, z_plain = stack.inputs({"rebalanced": 0.5, "plain": 0.5})[:2]
    assert abs(z_rebalanced - logit(stack.prior())) < 1e-9 and z_plain == 0.0
    assert stack.inputs({"plain": 0.5})[2:] == [1.0, 0.0]  # the abstention indicators


def test_pool_hands_the_stacks_parts_out_and_back() -> None:
    models = new_pool("stack")
    (given,) = models.score({"amount": 5.0})
    assert given.parts is not None and set(given.parts) <= {"arf_bounded", "logreg", "booster"}
    train(models, stream(300))
    stack = models.members["stack"].model
    assert stack.fallbacks == 0 and stack.labels == 300
    models.learn({"amount": 5.0}, False, {"stack": given.score})
    assert stack.fallbacks == 1


@pytest.mark.slow  # the stack learns 8,000 events (forests inside): seconds of CPU
def test_stack_scores_are_calibrated_on_a_stationary_stream() -> None:
    models = new_pool("stack")
    events = stream(8000, seed=5)
    labels, scores = [], []
    for x, y in events:
        (given,) = models.score(x)
        models.learn(x, y, {"stack": given.score}, {"stack": given.parts or {}})
        labels.append(y)
        scores.append(given.score)
    ece = metrics.expected_calibration_error(labels[4000:], scores[4000:])
    assert ece is not None and ece < 0.02


def test_expected_calibration_error_is_zero_when_rates_match_scores() -> None:
    y = np.array([True] * 10 + [False] * 90 + [True] * 50 + [False] * 50)
    s = np.array([0.1] * 100 + [0.5] * 100)
    assert metrics.expected_calibration_error(y, s) < 1e-12  # type: ignore[operator]
    assert abs(metrics.expected_calibration_error(y, 1 - s) - 0.8 * 0.5) < 1e-12  # type: ignore[operator]


def test_card_precision_counts_cards_not_transactions() -> None:
    days = np.zeros(6, dtype=int)
    cards = np.array(["a", "a", "a", "b", "c", "d"])
    y = np.array([True, True, True, False, False, True])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    assert metrics.card_precision_at_k(days, cards, y, s, k=2) == 0.5
    assert metrics.card_precision_at_k(days, cards, y, s, k=4) == 0.5


def test_the_learning_thread_only_copies_the_row_list_the_fit_thread_builds_the_matrix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built_on: list[str] = []
    build = booster_module._matrix

    def spy(rows: list[booster_module.Row], width: int) -> np.ndarray:  # type: ignore[type-arg]
        built_on.append(threading.current_thread().name)
        return build(rows, width)

    monkeypatch.setattr(booster_module, "_matrix", spy)
    booster = WindowedBooster(n_trees=20, refit_every=1000, publish_after=300, min_frauds=5)
    _fed(booster, 1000)
    assert booster._fit is not None and booster._fit.thread is not None
    booster._fit.thread.join()
    assert built_on == ["riverguard-booster-fit"]  # not the learner's (event-loop) thread
    _fed(booster, 300, seed=5)
    assert not booster.abstains() and booster.fits == 1


def test_the_window_fraud_count_follows_the_rows_through_forgetting_and_snapshots() -> None:
    never = {"refit_every": 10**9, "first_fit_after": 10**9}
    booster = WindowedBooster(max_rows=150, legit_share=0.5, **never)
    _fed(booster, 2000)
    counted = sum(label for _, _, label in booster._rows)
    assert booster._window_frauds == counted > 0
    restored = pickle.loads(pickle.dumps(booster))
    assert restored._window_frauds == counted
    state = booster.__getstate__()
    del state["_window_frauds"]  # a snapshot from before the counter
    older = WindowedBooster.__new__(WindowedBooster)
    older.__setstate__(state)
    assert older._window_frauds == counted


# ---- one champion for every horizon; learning cost ---------------------------------------


def test_stack_starts_as_the_mean_of_its_experts_and_silences_a_useless_member() -> None:
    stack = _two_members()
    _, _, weights = stack.expert_weights()
    assert weights == [1.0, 1.0, 1.0]  # meta-learner, "a" alone, "b" alone: no label yet
    rng = np.random.default_rng(2)
    for _ in range(300):
        y = bool(rng.random() < 0.05)
        parts = {"a": 0.6 if y else 0.01, "b": float(rng.uniform(0.01, 0.99))}
        stack.learn_meta(parts, y)
    _, _, weights = stack.expert_weights()
    meta, alone_a, alone_b = weights
    assert max(meta, alone_a) == 1.0 and alone_b < 1e-6
    # what "a" ranks first, the stack ranks first, whatever "b" says
    assert stack.combine({"a": 0.6, "b": 0.01}) > stack.combine({"a": 0.01, "b": 0.99})


def test_a_member_that_abstains_is_left_out_of_the_mixture() -> None:
    stack = _two_members()
    for i in range(200):
        stack.learn_meta({"a": 0.9 if i % 20 == 0 else 0.02}, i % 20 == 0)
    assert stack.losses[2] == stack.losses[0]  # "b" abstained: charged the meta-learner's loss
    without_b = stack.combine({"a": 0.9})
    assert 0.0 < without_b < 1.0


def test_stack_without_experts_is_the_meta_learner_alone() -> None:
    members = {"a": linear_model.LogisticRegression(), "b": linear_model.LogisticRegression()}
    stack = Stack(members, experts=False)
    for i in range(100):
        stack.learn_meta({"a": 0.3, "b": 0.2}, i % 10 == 0)
    x = stack.inputs({"a": 0.3, "b": 0.2})
    assert stack.combine({"a": 0.3, "b": 0.2}) == stack.meta.predict(x)


def test_sampled_forest_learns_every_fraud_and_keeps_the_odds() -> None:
    events = stream(4000, seed=11)

    def fed(share: float, weighted: bool) -> Bounded:
        arf = forest.ARFClassifier(n_models=3, max_share_to_split=1.0, seed=1)
        model = Bounded(arf, legit_share=share)
        if not weighted:
            model._learn_weighted = lambda x, y, weight: model.model.learn_one(x, y)  # type: ignore[method-assign]
        for x, y in events:
            model.learn_one(x, y)
        return model

    frauds = sum(y for _, y in events)
    sampled = fed(0.1, weighted=True)
    assert frauds + 0.07 * (4000 - frauds) < sampled.learned < frauds + 0.13 * (4000 - frauds)
    probe = [x for x, y in stream(2000, seed=12) if not y]

    def legit_score(model: Bounded) -> float:
        return float(np.mean([model.predict_proba_one(x)[True] for x in probe]))

    # weighted ×10, the sample's legitimate rows count as the skipped ones would have: the
    # scores of legitimate rows fall back toward the full forest's (unweighted: higher)
    full, unweighted = legit_score(fed(1.0, weighted=True)), legit_score(fed(0.1, weighted=False))
    assert full < legit_score(sampled) < 0.8 * unweighted


def test_which_legitimate_labels_are_kept_depends_on_the_features_alone() -> None:
    from models.sampling import keep

    rows = [x for x, _ in stream(500, seed=4)]
    first = [keep(x, 0.1, seed=7) for x in rows]
    shuffled = [keep(dict(reversed(list(x.items()))), 0.1, seed=7) for x in rows]
    assert first == shuffled and 20 < sum(first) < 80
    assert first != [keep(x, 0.1, seed=8) for x in rows]  # the seed picks another sample


def test_booster_refits_once_enough_new_frauds_arrive() -> None:
    booster = WindowedBooster(
        n_trees=20,
        refit_every=10**9,
        first_fit_after=500,
        publish_after=0,
        min_frauds=5,
        refit_frauds=30,
        legit_share=1.0,
    )
    _fed(booster, 500)
    assert booster.fits == 1
    frauds = [(x, y) for x, y in stream(3000, seed=8) if y]
    for x, y in frauds[:29]:
        booster.learn_one(x, y)
    assert booster.fits == 1
    booster.learn_one(*frauds[29])
    assert booster.fits == 2


def test_after_the_handover_the_meta_learner_alone_scores() -> None:
    members = {"a": linear_model.LogisticRegression(), "b": linear_model.LogisticRegression()}
    stack = Stack(members, handover=5)
    for i in range(100):
        stack.learn_meta({"a": 0.9 if i % 10 == 0 else 0.02, "b": 0.3}, i % 10 == 0)
    assert stack.frauds >= 5 and stack.expert_weights()[2] == [1.0, 0.0, 0.0]
    parts = {"a": 0.5, "b": 0.3}
    assert stack.combine(parts) == stack.meta.predict(stack.inputs(parts))
