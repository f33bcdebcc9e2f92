"""Inference plans answer exactly what the pool's River objects answer, at every stage of learning.

Every zoo model learns a seeded stream whose label rule flips half-way (trees split, adaptive
trees grow alternates, forest trees are replaced); at checkpoints its plan is compiled and
compared with :meth:`models.member.Member.predict_with_parts` — the number ``ModelPool.score``
reports — on random vectors (zeros, negatives, ±1e12, missing features, every split threshold
and its neighbours) and on the replayed stream, row by row and as a matrix.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import pickle
import random
from typing import Any

import numpy as np
import pytest
from mstreams import by_cost
from river import tree as river_tree
from river.tree.nodes.branch import DTBranch

from models import plans, zoo
from models.member import Member, Thresholds
from models.plans.trees import raw_threshold, signed_log

FEATURES = ("amount", "count", "ratio", "risk")
CHECKPOINTS = (50, 500, 2_000, 2_600, 5_000)
TOLERANCE = 1e-9


def drifting(n: int, seed: int = 1) -> list[tuple[dict[str, float], bool]]:
    """~8 % fraud from amounts and merchant risk, then (half-way) from counts and ratios."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = {
            "amount": rng.lognormvariate(4, 1.2),
            "count": float(rng.randint(0, 15)),
            "ratio": rng.random() * 4,
            "risk": rng.random() * 0.3,
        }
        y = x["amount"] > 250 or x["risk"] > 0.27 if i < n // 2 else x["count"] >= 14
        y = (not y) if rng.random() < 0.02 else y
        if rng.random() < 0.1:
            del x["risk"]  # a feature missing at learning too: trees route it by weight
        out.append((x, y))
    return out


def probes(plan: plans.Plan, seed: int) -> list[dict[str, float]]:
    """Random vectors over the features, and every split threshold with its neighbours."""
    rng = np.random.default_rng(seed)
    kinds = [0.0, -1.0, 1e12, -1e12, 5e-324, 1e-300]
    rows = []
    for _ in range(150):
        x = {}
        for name in FEATURES:
            roll = rng.random()
            if roll < 0.2:
                continue  # missing
            x[name] = (
                float(rng.choice(kinds))
                if roll < 0.4
                else float(rng.normal(0, 1) * 10 ** rng.integers(0, 4))
            )
        rows.append(x)
    for nodes in _nodes_of(plan.part):
        for f, t in zip(nodes.feature.tolist(), nodes.threshold.tolist(), strict=True):
            if f >= 0:
                name = nodes.names[f]
                for v in (t, math.nextafter(t, math.inf), math.nextafter(t, -math.inf)):
                    rows.append({"amount": 50.0, "count": 3.0, "ratio": 1.0, name: v})
    return rows


def _nodes_of(part: Any) -> list[Any]:
    found = [part.nodes] if hasattr(part, "nodes") else []
    for child in ("first", "second"):
        if hasattr(part, child):
            found += _nodes_of(getattr(part, child))
    for member in getattr(part, "members", ()):
        found += _nodes_of(member)
    return found


def assert_same(member: Member, plan: plans.Plan, rows: list[dict[str, float]]) -> None:
    got = []
    for x in rows:
        expected, parts = member.predict_with_parts(dict(x))
        value, plan_parts = plan.score_one(x)
        got.append(value)
        if expected is None:  # the River object raised: the pool reports its fallback
            assert math.isnan(value) and plan_parts is None
            continue
        assert abs(value - expected) <= TOLERANCE, (x, value, expected)
        assert (parts is None) == (plan_parts is None)
        if parts is not None and plan_parts is not None:
            assert parts.keys() == plan_parts.keys()
            assert all(abs(parts[k] - plan_parts[k]) <= TOLERANCE for k in parts)
    many, many_parts = plan.score_many(plans.matrix(rows, plan.features))
    np.testing.assert_allclose(many, got, rtol=0, atol=1e-12)
    if many_parts is not None:
        for i, x in enumerate(rows[:50]):
            one = plan.score_one(x)[1] or {}
            for name, column in many_parts.items():
                assert (name in one) == (not math.isnan(column[i]))
                assert name not in one or abs(one[name] - column[i]) <= 1e-12


def trained(name: str) -> list[Any]:
    """(checkpoint, member) snapshots of ``name`` learning the stream (copies: mutate freely)."""
    return copy.deepcopy(_trained(name))


@functools.cache
def _trained(name: str) -> list[Any]:
    """Learn ``name`` prequentially as the pool does, keeping a copy at each checkpoint."""
    events = drifting(max(CHECKPOINTS))
    spec = zoo.ZOO[name]
    member = Member.fresh(spec, window=100, thresholds=Thresholds())
    seen = []
    for i, (x, y) in enumerate(events, start=1):
        _, parts = member.predict_with_parts(x)
        member.learn(x, y, parts, at=float(i) * 60.0)
        if i in CHECKPOINTS:
            seen.append((i, copy.deepcopy(member)))
    return seen


@pytest.fixture(scope="module")
def events() -> list[tuple[dict[str, float], bool]]:
    return drifting(max(CHECKPOINTS))


@pytest.mark.parametrize("name", by_cost(sorted(zoo.ZOO)))
def test_plans_answer_what_the_pool_answers(
    name: str, events: list[tuple[dict[str, float], bool]]
) -> None:
    for labels, member in trained(name):
        plan = plans.compile_plan(member.model)
        assert plan is not None, (name, labels)
        replay = [x for x, _ in events[max(0, labels - 300) : labels]]
        assert_same(member, plan, probes(plan, seed=labels) + replay)
        restored = pickle.loads(pickle.dumps(plan))
        # LightGBM's 400 trees are what they are (zlib-compressed text); the rest is small
        limit = 1_000_000 if name.startswith(("booster", "stack")) else 300_000
        assert len(pickle.dumps(plan)) < limit
        np.testing.assert_array_equal(
            restored.predict_many(plans.matrix(replay, plan.features)),
            plan.predict_many(plans.matrix(replay, plan.features)),
        )


def test_the_stream_exercises_splits_alternates_and_replaced_trees(
    events: list[tuple[dict[str, float], bool]],
) -> None:
    final = {name: dict(trained(name))[5_000] for name in ("hat", "arf")}
    forest = final["arf"].model["RandomUnderSampler"].classifier
    assert forest.n_drifts_detected() > 0  # a background tree took a foreground tree's place
    hat = plans.compile_plan(final["hat"].model)
    assert hat is not None and hat.part.nodes.height > 2  # type: ignore[attr-defined]


def test_raw_thresholds_route_exactly_like_the_signed_log() -> None:
    rng = np.random.default_rng(5)
    for t in [0.0, -0.0, 1e-300, 27.6, -27.6, 709.0, 800.0, *rng.normal(0, 8, 500).tolist()]:
        cut = raw_threshold(t)
        assert signed_log(cut) <= t < signed_log(math.nextafter(cut, math.inf))


def test_an_adaptive_tree_whose_alternate_has_split_fails_as_river_does(
    events: list[tuple[dict[str, float], bool]],
) -> None:
    member = dict(trained("hat"))[5_000]
    hat = member.model["HoeffdingAdaptiveTreeClassifier"]
    assert isinstance(hat._root, DTBranch)
    hat._root._alternate_tree = copy.deepcopy(hat._root)  # as if the alternate had split
    plan = plans.compile_plan(member.model)
    assert plan is not None
    x = events[0][0]
    assert member.predict_with_parts(x) == (None, None) and member.predict_errors == 1
    assert math.isnan(plan.predict_one(x))
    assert np.isnan(plan.predict_many(plans.matrix([x], plan.features))).all()


def test_models_without_a_fixed_leaf_answer_get_no_plan() -> None:
    naive = zoo.arf_bounded(leaf_prediction="nba")
    naive.learn_one({"amount": 1.0}, True)
    assert plans.compile_plan(naive) is None
    assert plans.compile_plan(river_tree.HoeffdingTreeClassifier(leaf_prediction="nb")) is None
    assert plans.compile_plan(object()) is None


def test_plans_are_immutable_and_pools_get_one_per_member() -> None:
    pool = zoo.ZOO  # the default lineup: champion blend, challengers logreg and hat
    from models.pool import ModelPool

    models = ModelPool([pool["blend"], pool["logreg"], pool["hat"]], champion="blend")
    for x, y in drifting(300):
        models.learn(x, y, {})
    found = plans.for_pool(models)
    assert list(found) == ["blend", "logreg", "hat"] and all(found.values())
    plan = found["logreg"]
    assert plan is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.kind = "changed"  # type: ignore[misc]
    assert set(plans.features_of(found)) <= set(FEATURES)
    x = {"amount": 120.0, "count": 2.0}
    assert [s.score for s in models.score(x)] == pytest.approx(
        [p.predict_one(x) for p in found.values() if p is not None], abs=TOLERANCE
    )


def test_adaptive_trees_with_alternate_subtrees(
    events: list[tuple[dict[str, float], bool]],
) -> None:
    """A quicker-splitting adaptive tree grows alternates after the flip; plans add them up."""
    spec = dataclasses.replace(zoo.ZOO["hat"], factory=lambda: zoo.hat(100, 0.01))
    member = Member.fresh(spec, window=100, thresholds=Thresholds())
    compared = 0
    for i, (x, y) in enumerate(events[:3_000], start=1):
        member.learn(x, y)
        if i % 10 == 0 and i > 2_500:  # the alternate lives for a few dozen labels
            plan = plans.compile_plan(member.model)
            assert plan is not None
            if plan.part.nodes.has_alternates:  # type: ignore[attr-defined]
                assert_same(member, plan, probes(plan, seed=i) + [x for x, _ in events[:200]])
                compared += 1
    assert compared >= 3
