"""Card and merchant state expires after the entity is silent past the longest window (plus
the lateness bound): every update renews the lifetime, and features are exactly those of a
store without expiry (checked against the reference, and against a store with TTLs off)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from fstreams import label, tx
from test_store_equivalence import assert_same

from features import store
from features.config import DAY_MS, LONGEST_WINDOW_MS, FeatureConfig
from features.reference import MemoryFeatureStore
from features.schema import Transaction

H, D = timedelta(hours=1), timedelta(days=1)
StoreFactory = Callable[..., store.RedisFeatureStore]


def _stream() -> list[Transaction]:
    return [
        tx(f"t{i}", i * 7 * H, f"{10 + i}.50", card=f"c{i % 3}", merchant=f"m{i % 2}")
        for i in range(40)
    ]


async def test_entity_keys_get_a_lifetime_past_the_longest_window_and_features_do_not_change(
    make_store: StoreFactory,
) -> None:
    live, forever = make_store(), make_store(entity_ttl=timedelta(0))
    reference = MemoryFeatureStore(FeatureConfig())
    items = _stream()
    probe = [tx("p0", 300 * H, card="c0", merchant="m0"), tx("p1", 301 * H, card="c1")]
    labels = [label(t, is_fraud=True) for t in items[:6]]
    results = []
    for s in (live, forever, reference):
        scored = await s.score_batch(items)
        await s.apply_labels(labels)
        results.append(scored + await s.score_batch(probe))
    got, off, want = results
    assert [r.features for r in got] == [r.features for r in off]  # bit-identical
    for mine, theirs in zip(got, want, strict=True):
        assert_same(mine, theirs)

    life = live.config.entity_ttl_ms
    assert life == LONGEST_WINDOW_MS + live.config.lateness_ms + 7 * DAY_MS
    keys = [*live.keys.card("c0"), *live.keys.merchant("m0")]  # state and fraud of each
    for key in keys:
        assert 0 < await live.client.pttl(key) <= life, key
    for key in [*forever.keys.card("c0"), *forever.keys.merchant("m0")]:
        assert await forever.client.pttl(key) == -1, key  # TTLs off: never expires


async def test_an_update_renews_the_lifetime(make_store: StoreFactory) -> None:
    short = make_store(entity_ttl=timedelta(days=40))
    await short.score_batch([tx("a", 0 * H)])
    state = short.keys.card("c1")[0]
    await short.client.pexpire(state, 1000)  # nearly expired
    await short.score_batch([tx("b", 1 * H)])
    assert await short.client.pttl(state) > 39 * DAY_MS


def test_a_lifetime_shorter_than_the_longest_window_and_lateness_is_refused() -> None:
    with pytest.raises(ValueError, match="entity_ttl"):
        FeatureConfig(lateness=timedelta(days=7), entity_ttl=timedelta(days=36))
    assert FeatureConfig(entity_ttl=timedelta(days=37)).entity_ttl_ms == 37 * DAY_MS
