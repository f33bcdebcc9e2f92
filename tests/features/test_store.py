"""RedisFeatureStore on a real Valkey: atomic, idempotent, order-independent within the
lateness bound, and robust plumbing (script cache flush, lost connections, decoding)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fstreams import T0, decode_card_state, label, tx
from redis.asyncio import Redis

from features import store
from features.config import FeatureConfig, FeatureResult
from features.schema import Label, Transaction

M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
StoreFactory = Callable[..., store.RedisFeatureStore]


# --- atomicity and idempotence -----------------------------------------------------------


async def test_concurrent_transactions_on_one_card_are_counted_exactly(
    make_store: StoreFactory,
) -> None:
    feature_store = make_store()
    items = [tx(f"k{i}", i * M, f"{i + 1}.25", merchant=f"m{i % 3}") for i in range(200)]
    results = await asyncio.gather(*(feature_store.score_batch([item]) for item in items))
    assert {r[0].status for r in results} == {"fresh"}
    view = await feature_store.card_features("c1", T0 + 2 * D)
    assert view["card_count_30d"] == 200
    assert view["card_sum_30d"] == pytest.approx(
        float(sum(Decimal(i) + Decimal("1.25") for i in range(200)))
    )
    before = await _snapshot(feature_store, ["c1"], ["m0", "m1", "m2"])

    replayed = await asyncio.gather(*(feature_store.score_batch([item]) for item in items))
    assert {r[0].status for r in replayed} == {"duplicate"}
    assert [r[0].features for r in replayed] == [r[0].features for r in results]
    assert await _snapshot(feature_store, ["c1"], ["m0", "m1", "m2"]) == before
    probe = (await feature_store.score_batch([tx("probe", 2 * D, merchant="m0")]))[0].features
    assert probe["merchant_count_30d"] == 67  # i % 3 == 0 for 67 of 200


async def _snapshot(
    feature_store: store.RedisFeatureStore, cards: Sequence[str], merchants: Sequence[str]
) -> list[Any]:
    client, keys = feature_store.client, feature_store.keys
    out: list[Any] = []
    for card in cards:
        state, fraud = keys.card(card)
        raw = await client.get(state)
        out += [decode_card_state(raw) if raw else None, await client.hgetall(fraud)]
    for merchant in merchants:
        state, fraud = keys.merchant(merchant)
        out += [await client.get(state), await client.zrange(fraud, 0, -1, withscores=True)]
    return out


async def test_a_replayed_batch_changes_nothing(make_store: StoreFactory) -> None:
    feature_store = make_store()
    batch = [tx(f"r{i}", i * H, "12.5", card=f"c{i % 2}", merchant=f"m{i % 3}") for i in range(20)]
    first = await feature_store.score_batch(batch)
    before = await _snapshot(feature_store, ["c0", "c1"], ["m0", "m1", "m2"])
    second = await feature_store.score_batch(batch)
    assert [r.status for r in second] == ["duplicate"] * 20
    assert [r.features for r in second] == [r.features for r in first]
    assert await _snapshot(feature_store, ["c0", "c1"], ["m0", "m1", "m2"]) == before


# --- ordering ----------------------------------------------------------------------------


def _shuffled_stream(seed: int) -> list[Transaction | tuple[Label, Transaction]]:
    rnd = random.Random(7)
    txs = [
        tx(f"o{i}", rnd.randrange(5 * 24 * 60) * M, f"{rnd.randrange(1, 500)}.{i % 100:02d}",
           card=f"c{i % 2}", merchant=f"m{i % 3}", lat=48 + i / 100, lon=2.0)
        for i in range(40)
    ]  # fmt: skip
    events: list[Transaction | tuple[Label, Transaction]] = list(txs)
    random.Random(seed).shuffle(events)
    # labels after their transaction: fraud for every fifth, one flipped back
    for i in range(0, 40, 5):
        events.append(label(txs[i]))
    events.append(label(txs[5], is_fraud=False))
    return events


async def _play(
    feature_store: store.RedisFeatureStore,
    events: Sequence[Transaction | tuple[Label, Transaction]],
) -> list[FeatureResult]:
    results = []
    for event in events:
        if isinstance(event, Transaction):
            results += await feature_store.score_batch([event])
        else:
            await feature_store.apply_labels([event])
    return results


async def test_permutations_within_the_bound_give_identical_state(make_store: StoreFactory) -> None:
    probes = [
        tx(f"probe{i}", 6 * D + i * M, "99", card=f"c{i % 2}", merchant=f"m{i}") for i in range(3)
    ]
    states, probe_features = [], []
    for seed in range(4):
        feature_store = make_store()
        results = await _play(feature_store, _shuffled_stream(seed))
        assert {r.status for r in results} == {"fresh"}
        states.append(await _snapshot(feature_store, ["c0", "c1"], ["m0", "m1", "m2"]))
        probe_features.append([r.features for r in await feature_store.score_batch(probes)])
    assert all(state == states[0] for state in states)
    assert all(features == probe_features[0] for features in probe_features)


async def test_beyond_the_bound_is_rejected_as_late_and_counted_nowhere(
    make_store: StoreFactory,
) -> None:
    feature_store = make_store(lateness=timedelta(days=7))
    await feature_store.score_batch([tx("now", 10 * D, merchant="m1")])
    before = await _snapshot(feature_store, ["c1"], ["m1"])
    (late,) = await feature_store.score_batch([tx("old", 3 * D - M, merchant="m1")])
    assert (late.status, late.features) == ("late", {})
    assert late.reason == "late_event: 7.00 days behind the card's newest event (bound 7 days)"
    assert await _snapshot(feature_store, ["c1"], ["m1"]) == before
    assert (await feature_store.score_batch([tx("old", 3 * D - M)]))[0].status == "late"
    (edge,) = await feature_store.score_batch([tx("edge", 3 * D, merchant="m1")])
    assert edge.status == "fresh"


# --- plumbing ----------------------------------------------------------------------------


async def test_scripts_reload_after_the_script_cache_is_flushed(
    make_store: StoreFactory, client: Redis
) -> None:
    feature_store = make_store()
    await feature_store.load_scripts()
    await client.script_flush()
    (result,) = await feature_store.score_batch([tx("n1", H)])
    assert result.status == "fresh"
    await client.script_flush()
    await feature_store.apply_labels([label(tx("n1", H))])
    assert (await feature_store.card_features("c1", T0 + 2 * H))["card_fraud_30d"] == 1.0


async def test_conflicting_payload_is_flagged_not_applied(make_store: StoreFactory) -> None:
    feature_store = make_store()
    (first,) = await feature_store.score_batch([tx("z1", H, "10")])
    (clash,) = await feature_store.score_batch([tx("z1", H, "11")])
    assert (clash.status, clash.reason) == ("duplicate", store.CONFLICT)
    assert clash.features["card_count_30d"] == first.features["card_count_30d"]
    assert (await feature_store.card_features("c1", T0 + D))["card_sum_1d"] == 10.0


async def test_observer_and_decoded_clients(redis_url: str) -> None:
    seen: list[tuple[str, int]] = []
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        config = FeatureConfig(key_prefix=f"d{uuid.uuid4().hex[:8]}")
        feature_store = store.RedisFeatureStore(
            client, config, observer=lambda op, n, s: seen.append((op, n))
        )
        item = tx("o1", H, lat=1.0, lon=2.0)
        assert (await feature_store.score_batch([item, item]))[1].status == "duplicate"
        await feature_store.apply_labels([label(item)])
        assert seen == [("score_batch", 2), ("apply_labels", 1)]
    finally:
        await client.aclose()


async def test_a_connection_closed_by_the_server_is_replaced(redis_url: str) -> None:
    client = store.connect(redis_url, max_connections=1)
    admin = Redis.from_url(redis_url)
    try:
        config = FeatureConfig(key_prefix=f"k{uuid.uuid4().hex[:8]}")
        feature_store = store.RedisFeatureStore(client, config)
        await feature_store.score_batch([tx("a1", H)])
        pooled = await client.client_id()  # the pool's only connection
        assert await admin.client_kill_filter(_id=pooled) == 1
        (result,) = await feature_store.score_batch([tx("a2", 2 * H)])
        assert (result.status, result.features["card_count_1h"]) == ("fresh", 1.0)
    finally:
        await admin.aclose()
        await client.aclose()
