"""Review and decline budgets: cutoffs from score quantiles, kept by the leader, followed."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from river import base

from app.core import budgets
from app.core.decisions import WarmUp
from app.main import create_app
from app.tools import evaluate
from models import pool as model_pool
from models import zoo
from simulator.generate import SimConfig, simulate
from tests.app.conftest import ADMIN, settings_for, tx


@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=300),
    st.floats(0, 0.6),
)
def test_a_cutoff_lets_through_at_most_its_share_and_no_less_than_it_could(
    scores: list[float], share: float
) -> None:
    values = np.array(scores)
    cut = budgets.cutoff(values, share)
    allowed = int(np.floor(share * len(values) + 1e-9))
    assert (values >= cut).sum() <= allowed
    # any lower cutoff that changes the outcome lets through more than the share
    below = values[values < cut]
    if below.size:
        assert (values >= below.max()).sum() > allowed


def test_cutoffs_survive_json_with_infinite_values() -> None:
    cold = budgets.Budget(review=0.01, decline=0.001).cutoffs("m", [])
    assert cold.review == cold.decline == budgets.NEVER
    again = budgets.Cutoffs.from_json(cold.to_json())
    assert again == cold


class _Traffic:
    """RecentTraffic over a list (the Postgres adapter is tested on the stack below)."""

    def __init__(self) -> None:
        self.rows: list[budgets.RecentRow] = []

    async def rows_after(
        self, after: tuple[datetime, str] | None, limit: int
    ) -> list[budgets.RecentRow]:
        if after is None:
            return self.rows[-limit:]
        keys = [(r.scored_at, r.transaction_id) for r in self.rows]
        start = next((i for i, k in enumerate(keys) if k > after), len(keys))
        return self.rows[start : start + limit]


class _Store:
    def __init__(self) -> None:
        self.blob: bytes | None = None

    async def publish_cutoffs(self, blob: bytes) -> None:
        self.blob = blob

    async def cutoffs(self) -> bytes | None:
        return self.blob


def test_the_leader_publishes_cutoffs_a_follower_applies_them_and_a_promotion_switches() -> None:
    traffic, store = _Traffic(), _Store()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    values = np.random.default_rng(3).random(1000)
    traffic.rows = [budgets.RecentRow(at, f"t{i:04d}", {"x": v}) for i, v in enumerate(values)]
    models = {"a": 1.0, "b": 0.1}  # each model scores x times its factor

    async def rescore_with(name: str, rows: Any) -> list[float]:
        return [row["x"] * models[name] for row in rows]

    budget = budgets.Budget(review=0.05, decline=0.01, window=500, min_scores=100)
    seen: dict[str, budgets.Cutoffs] = {}
    champion = ["a"]
    leader = budgets.CutoffKeeper(
        budget,
        budgets.RecentWindow(traffic, 500),
        lambda rows: rescore_with(champion[0], rows),
        store,
        lambda c: seen.update(leader=c),
        every_seconds=60.0,
    )
    follower = budgets.CutoffKeeper(
        budget,
        budgets.RecentWindow(_Traffic(), 500),
        lambda rows: rescore_with("a", rows),
        store,
        lambda c: seen.update(follower=c),
    )

    async def run() -> None:
        await leader.tick(True, "a")
        await follower.tick(False, "a")
        assert seen["follower"] == seen["leader"]
        assert seen["leader"].source == "budget" and seen["leader"].champion == "a"
        champion[0] = "b"
        await leader.tick(True, "b")  # promoted: recomputed at once, though not yet due
        await follower.tick(False, "b")

    asyncio.run(run())
    assert seen["follower"].champion == "b" and seen["follower"] == seen["leader"]
    window_b = values[-500:] * models["b"]
    assert (window_b >= seen["leader"].review).sum() == 30  # 5 % + 1 % of 500
    assert (window_b >= seen["leader"].decline).sum() == 5


# ---- the simulator stream ------------------------------------------------------------------


def _replay(review: float, decline: float, warmup: WarmUp) -> list[tuple[bool, str]]:
    """The default lineup scores a simulated stream and learns its delayed labels; the
    leader's keeper recomputes the cutoffs every 200 transactions. Returns, per transaction,
    whether warm-up was over and the model's decision."""
    records = list(simulate(SimConfig(cards=1500, merchants=150, days=20, seed=21)))
    pool = model_pool.ModelPool([zoo.ZOO[n] for n in ("blend", "logreg", "hat")], "blend")
    # The simulated issuer sees ~2,300 transactions a day; a real one at 100 tx/s fills the
    # default 10,000-transaction window in under two minutes. The window is scaled to the
    # stream (2,000: ~20 simulated hours) so it spans what it would span in production
    # relative to fraud campaigns, which last hours.
    budget = budgets.Budget(review=review, decline=decline, window=2_000, min_scores=500)
    traffic, current = _Traffic(), [budget.cutoffs("blend", [])]

    def apply(cut: budgets.Cutoffs) -> None:
        current[0] = cut

    keeper = budgets.CutoffKeeper(
        budget,
        budgets.RecentWindow(traffic, budget.window),
        lambda rows: budgets.rescore(pool, rows),
        _Store(),
        apply,
        every_seconds=0.0,
    )
    given_at: dict[str, Any] = {}
    out: list[tuple[bool, str]] = []
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for event in evaluate.events(records):
        if event.kind == "label":
            scored = given_at.pop(event.key, None)
            if scored is not None:
                pool.learn(*scored[:1], event.label, *scored[1:])
                warmup.observe_pool(pool)
            continue
        x = dict(event.features or {})
        scores = pool.score(x)
        by_name = {s.name: s.score for s in scores}
        given_at[event.key] = (x, by_name, {s.name: s.parts for s in scores if s.parts})
        decision = current[0].decide(scores[0].score) if warmup.done else "approve"
        traffic.rows.append(budgets.RecentRow(now, event.key, x, decision))
        out.append((warmup.done, current[0].decide(scores[0].score)))
        if len(out) % 200 == 0:
            asyncio.run(keeper.tick(True, pool.champion))
    return out


@pytest.fixture(scope="module")
def replayed() -> list[tuple[bool, str]]:
    """The default warm-up (1,000 labels, 10 frauds) and a 2 % review, 0.5 % decline budget."""
    return _replay(0.02, 0.005, WarmUp(labels=1_000, frauds=10))


@pytest.mark.slow
def test_budgets_hold_the_realised_rates_within_20_percent_after_warm_up(
    replayed: list[tuple[bool, str]],
) -> None:
    after = collections.Counter(d for warm, d in replayed if warm)
    total = sum(after.values())
    assert total > 20_000  # most of the stream is after warm-up
    assert after["review"] / total == pytest.approx(0.02, rel=0.2)
    assert after["decline"] / total == pytest.approx(0.005, rel=0.2)


@pytest.mark.slow
def test_a_fresh_service_never_reviews_more_than_its_budget(
    replayed: list[tuple[bool, str]],
) -> None:
    """From the first transaction on, with the default warm-up: at no point has more than the
    budget (2.5 % reviewed or declined, +20 %) been stopped. (Without warm-up a model that is
    learning fast outruns any trailing quantile: measured 7 % over its first 3,000.)"""
    stopped = 0
    for n, (warm, decision) in enumerate(replayed, 1):
        stopped += warm and decision != "approve"
        if n % 1000 == 0:
            assert stopped / n <= 0.025 * 1.2, f"{stopped} of the first {n} stopped"


# ---- on the stack --------------------------------------------------------------------------


class _ByAmount(base.Classifier):
    """The score is the amount / 1000: a known score distribution for the budget."""

    def learn_one(self, x: dict[str, Any], y: Any, **kwargs: Any) -> None:
        return None

    def predict_proba_one(self, x: dict[str, Any], **kwargs: Any) -> dict[bool, float]:
        p = min(max(float(x["amount"]) / 1000, 0.0), 1.0)
        return {False: 1 - p, True: p}


@pytest.fixture
def by_amount() -> Iterator[str]:
    zoo.ZOO["by_amount"] = zoo.ModelSpec("by_amount", _ByAmount, "test model", "1")
    yield "by_amount"
    del zoo.ZOO["by_amount"]


def _gauge(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_a_service_with_a_budget_reviews_its_share_of_recent_traffic(
    fresh_database: str, api_redis_url: str, by_amount: str
) -> None:
    settings = settings_for(
        fresh_database,
        api_redis_url,
        scoring={"champion": by_amount, "challengers": [], "warmup_labels": 0,
                 "warmup_frauds": 0, "bundle_every_seconds": 0.2},
        decisions={"review_budget": 0.08, "decline_budget": 0.02, "budget_min_scores": 100,
                   "budget_window": 300},
    )  # fmt: skip
    amounts = [float(a) for a in np.random.default_rng(5).permutation(np.arange(1, 301))]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        first = [client.post("/v1/transactions", json=tx(amount=a), headers=ADMIN) for a in amounts]
        assert all(r.json()["decision"] == "approve" for r in first[:100])  # cold: nothing
        deadline = time.monotonic() + 30
        while _gauge(client, "riverguard_decision_budget_scores") < 300:
            assert time.monotonic() < deadline, "the leader never recomputed the cutoffs"
            time.sleep(0.1)
        second = [
            client.post("/v1/transactions", json=tx(amount=a), headers=ADMIN) for a in amounts
        ]
        replay = client.get(f"/v1/transactions/{second[0].json()['transaction_id']}", headers=ADMIN)
        review_cut = _gauge(client, 'riverguard_decision_cutoff{decision="review"}')
    counts = collections.Counter(r.json()["decision"] for r in second)
    assert counts == {"approve": 270, "review": 24, "decline": 6}
    assert all(r.json()["decided_by"] == "model" for r in second)
    assert review_cut == pytest.approx(0.270, abs=1e-6)
    assert replay.json()["decision"] == second[0].json()["decision"]
