"""Fast scoring without servers: a follower scores with inference plans exactly as the leader's
River pool does (scores to 1e-9, parts, decisions, reasons), a pool that learns drops its
plans, and a Kafka-sized batch gives the same records as scoring its rows one at a time."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.bootstrap import build_pool
from app.config import ScoringSettings, Settings
from app.core import bundles
from app.core.metrics import Metrics
from app.core.scoring import Conflict, Scored, Scorer, ScoringService, group_writer
from features.reference import MemoryFeatureStore
from features.schema import Transaction
from models import pool as model_pool
from tests.app.fakes import MemoryRecords
from tests.app.test_bundles import MemoryBundles

FS = "feature-set"
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
TOLERANCE = 1e-9


def _settings(champion: str | None = None) -> Settings:
    scoring = ScoringSettings() if champion is None else ScoringSettings(champion=champion)
    return Settings(_env_file=None, scoring=scoring)  # type: ignore[call-arg]


def _txs(prefix: str, count: int, seed: int, start: datetime) -> list[Transaction]:
    """Small amounts on many cards; every ~7th a large one (the fraud the models learn)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        big = rng.random() < 0.15
        amount = rng.uniform(600, 3000) if big else rng.uniform(2, 120)
        out.append(
            Transaction(
                transaction_id=f"{prefix}-{i}",
                card_id=f"c{rng.randint(0, 40)}",
                merchant_id=f"m{rng.randint(0, 9)}",
                amount=Decimal(f"{amount:.2f}"),
                currency="EUR",
                timestamp=start + timedelta(minutes=7 * i),
                channel=rng.choice(["ecom", "pos"]),
                country="FR",
            )
        )
    return out


async def _features(store: MemoryFeatureStore, txs: list[Transaction]) -> list[dict[str, float]]:
    return [dict(r.features) for r in await store.score_batch(txs)]


_TRAINED: list[Any] = []


async def _leader_and_probe() -> tuple[model_pool.ModelPool, list[Transaction]]:
    """The default lineup trained on 1,500 labelled rows (a bundle's worth) and 120 fresh
    transactions to score after them (packed once, unpacked per test: tests mutate pools)."""
    if not _TRAINED:
        store, leader = MemoryFeatureStore(), build_pool(_settings(), None)
        start = NOW - timedelta(days=12)
        train = _txs("train", 1500, seed=5, start=start)
        for tx, x in zip(train, await _features(store, train), strict=True):
            leader.learn(x, tx.amount > 500, {s.name: s.score for s in leader.score(x)})
        probe = _txs("probe", 120, seed=6, start=start + timedelta(days=8))
        _TRAINED.append((bundles.pack(leader, FS, 42), probe))
    blob, probe = _TRAINED[0]
    return bundles.unpack(blob, build_pool_for, FS)[1], probe


def build_pool_for(champion: str) -> model_pool.ModelPool:
    return build_pool(_settings(champion), None)


async def _follow(blob: bytes) -> model_pool.ModelPool:
    store, swapped = MemoryBundles(), []
    follower = bundles.Follower(
        store=store, make_pool=build_pool_for, feature_set=FS, metrics=Metrics(),
        swap=lambda seq, p: swapped.append(p), leading=lambda: False,
    )  # fmt: skip
    await store.publish(42, blob)
    assert await follower.poll()
    pool: model_pool.ModelPool = swapped[-1]
    return pool


def _same_scores(mine: list[model_pool.ModelScore], theirs: list[model_pool.ModelScore]) -> None:
    assert [(s.name, s.version, s.role, s.fallback) for s in mine] == [
        (s.name, s.version, s.role, s.fallback) for s in theirs
    ]
    for a, b in zip(mine, theirs, strict=True):
        assert abs(a.score - b.score) <= TOLERANCE
        assert (a.parts is None) == (b.parts is None)
        if a.parts is not None and b.parts is not None:
            assert a.parts.keys() == b.parts.keys()
            assert all(abs(a.parts[k] - b.parts[k]) <= TOLERANCE for k in a.parts)


async def test_a_follower_scores_and_decides_with_plans_exactly_like_the_leaders_river_pool() -> (
    None
):
    leader, probe = await _leader_and_probe()
    follower = await _follow(bundles.pack(leader, FS, 42))
    compiled = follower.plans()
    assert list(compiled) == leader.names() and all(p is not None for p in compiled.values())
    assert leader.plans() == {}  # a pool that did not follow keeps its River objects

    rows = await _features(MemoryFeatureStore(), probe)
    batch = follower.score_many(rows)
    metrics = Metrics()
    theirs_scorer = Scorer(leader, metrics, FS)
    mine_scorer = Scorer(follower, metrics, FS)
    decisions = []
    for tx, x, many in zip(probe, rows, batch, strict=True):
        theirs = leader.score(x)
        _same_scores(follower.score(x), theirs)
        _same_scores(many, theirs)
        assert abs(follower.score_champion(x) - leader.score_champion(x)) <= TOLERANCE
        result: Any = type("R", (), {"features": x, "status": "fresh"})()
        args = (tx, tx.canonical_json(), "d", result, "kafka", NOW)
        _, a = mine_scorer.record(*args)
        _, b = theirs_scorer.record(*args)
        assert (a.decision, a.decided_by) == (b.decision, b.decided_by)
        assert [(r.code, r.feature, r.value) for r in a.reasons] == [
            (r.code, r.feature, r.value) for r in b.reasons
        ]
        decisions.append(a.decision)
    # the probe reaches every decision, so reasons (review/decline) were compared too
    assert set(decisions) == {"approve", "review", "decline"}
    for member in follower.members.values():
        assert member.predict_errors == 0


async def test_a_pool_that_learns_drops_its_plans_and_scores_with_river_again() -> None:
    leader, probe = await _leader_and_probe()
    follower = await _follow(bundles.pack(leader, FS, 42))
    x = (await _features(MemoryFeatureStore(), probe[:1]))[0]
    assert follower.plans()
    follower.learn(x, True, {s.name: s.score for s in follower.score(x)})
    leader.learn(x, True, {s.name: s.score for s in leader.score(x)})
    assert follower.plans() == {}
    assert [s.score for s in follower.score(x)] == [s.score for s in leader.score(x)]
    # and a bundle loaded without plans (a leader unpacking) never gets any
    assert bundles.unpack(bundles.pack(leader, FS, 43), build_pool_for, FS)[1].plans() == {}


def _service(pool: model_pool.ModelPool) -> tuple[ScoringService, MemoryRecords]:
    records, metrics = MemoryRecords(), Metrics()
    service = ScoringService(
        MemoryFeatureStore(), Scorer(pool, metrics, FS), records, metrics,
        group_writer(records, flush_ms=1, flush_max=1000), clock=lambda: NOW,
    )  # fmt: skip
    return service, records


async def test_a_batch_gives_the_records_its_rows_get_one_at_a_time() -> None:
    leader, probe = await _leader_and_probe()
    follower = await _follow(bundles.pack(leader, FS, 42))
    batched, batch_records = _service(follower)
    single, single_records = _service(await _follow(bundles.pack(leader, FS, 42)))
    outcomes = await batched.score(probe, "kafka")
    one_by_one = [(await single.score([tx], "rest"))[0] for tx in probe]
    assert all(isinstance(o, Scored) for o in outcomes + one_by_one)
    for tx in probe:
        a = batch_records.transactions[tx.transaction_id]
        b = single_records.transactions[tx.transaction_id]
        assert (a.payload, a.digest, a.features, a.decision, a.decided, a.feature_status) == (
            b.payload, b.digest, b.features, b.decision, b.decided, b.feature_status,
        )  # fmt: skip
        assert abs(a.score - b.score) <= 1e-12
        for s, t in zip(a.scores, b.scores, strict=True):
            assert (s["name"], s["version"], s["role"]) == (t["name"], t["version"], t["role"])
            assert abs(s["score"] - t["score"]) <= 1e-12
    assert len({r.decision for r in batch_records.transactions.values()}) >= 2


async def test_a_big_batch_lets_other_requests_in_between_its_rows() -> None:
    leader, probe = await _leader_and_probe()
    service, _ = _service(await _follow(bundles.pack(leader, FS, 42)))
    ticks, seen = [0], []
    decide = service.scorer.decide

    def watched(*args: Any) -> Any:
        seen.append(ticks[0])  # how often the loop ran other tasks before this row
        return decide(*args)

    async def tick() -> None:
        while True:
            ticks[0] += 1
            await asyncio.sleep(0)

    service.scorer.decide = watched  # type: ignore[method-assign]
    ticker = asyncio.create_task(tick())
    await service.score(probe, "kafka")
    ticker.cancel()
    assert len(seen) == len(probe)
    assert seen[1:64] == [seen[0]] * 63  # the rows of one chunk run back to back
    assert seen[64] > seen[63]  # then the loop answers others before the next chunk


async def test_a_batch_guards_bad_values_as_the_row_by_row_path_does() -> None:
    leader, probe = await _leader_and_probe()
    rows: list[dict[str, Any]] = await _features(MemoryFeatureStore(), probe[:12])
    for x, bad in zip(rows, [math.nan, math.inf, -math.inf, 1e13, -1e15, 5.0], strict=False):
        x["amount"] = bad
    same_keys = [dict(x) for x in rows]
    mixed = [dict(x) for x in rows]
    mixed[3]["amount_log"] = "12"  # not a number: dropped (and the batch cleaned row by row)
    del mixed[4]["card_count_1d"]  # a missing feature
    for batch in (same_keys, mixed):
        one, many = (
            await _follow(bundles.pack(leader, FS, 42)),
            await _follow(bundles.pack(leader, FS, 42)),
        )
        singles = [one.score(x) for x in batch]
        for a, b in zip(many.score_many(batch), singles, strict=True):
            _same_scores(a, b)
        assert (many.dropped, many.clipped) == (one.dropped, one.clipped)
        assert many.dropped >= 3 and many.clipped == 2


class _BrokenFor(MemoryFeatureStore):
    """Features that fail for one card (a later-stage failure that belongs to one row)."""

    def __init__(self, card_id: str) -> None:
        super().__init__()
        self.card_id = card_id

    async def score_batch(self, txs: Any) -> Any:
        if any(tx.card_id == self.card_id for tx in txs):
            raise RuntimeError("this card breaks the feature stage")
        return await super().score_batch(txs)


async def test_concurrent_rest_requests_share_one_batch_and_each_gets_its_own_answer() -> None:
    leader, probe = await _leader_and_probe()
    service, records = _service(await _follow(bundles.pack(leader, FS, 42)))
    (stored,) = await service.score(probe[:1], "rest")
    assert isinstance(stored, Scored)
    changed = probe[0].model_copy(update={"amount": probe[0].amount + 1})
    batch = [probe[0], changed, *probe[1:6], probe[1]]  # replay, conflict, fresh, in-batch copy
    inserts = records.inserts
    outcomes = await asyncio.gather(*(service.submit(tx) for tx in batch))
    assert records.inserts == inserts + 1  # one group commit for the whole batch
    replay, conflict, *fresh, copy = outcomes
    assert isinstance(replay, Scored) and replay.score.replayed
    assert replay.score.score == stored.score.score
    assert isinstance(conflict, Conflict)
    assert all(isinstance(o, Scored) and not o.score.replayed for o in fresh)
    assert isinstance(copy, Scored) and copy.score.replayed
    assert copy.score.score == fresh[0].score.score  # type: ignore[union-attr]
    assert set(records.transactions) == {tx.transaction_id for tx in probe[:6]}


async def test_a_row_that_breaks_a_later_stage_fails_only_its_own_request() -> None:
    leader, probe = await _leader_and_probe()
    pool = await _follow(bundles.pack(leader, FS, 42))
    records, metrics = MemoryRecords(), Metrics()
    service = ScoringService(
        _BrokenFor("broken"), Scorer(pool, metrics, FS), records, metrics,
        group_writer(records, flush_ms=1, flush_max=1000), clock=lambda: NOW,
    )  # fmt: skip
    broken = probe[0].model_copy(update={"card_id": "broken"})
    outcomes = await asyncio.gather(
        *(service.submit(tx) for tx in [broken, *probe[1:5]]), return_exceptions=True
    )
    assert isinstance(outcomes[0], RuntimeError)
    assert all(isinstance(o, Scored) for o in outcomes[1:])
    assert set(records.transactions) == {tx.transaction_id for tx in probe[1:5]}
