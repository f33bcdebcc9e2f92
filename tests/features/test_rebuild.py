"""FLUSHDB, rebuild from history, and every feature is what it was."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

from fstreams import T0, label, tx
from redis.asyncio import Redis

from features import rebuild, store
from features.config import FeatureConfig
from features.schema import Label, Transaction

H, D = timedelta(hours=1), timedelta(days=1)
Event = Transaction | tuple[Label, Transaction]


def _live_stream(seed: int) -> list[Event]:
    """Arrival order: mostly on time, some late within the bound, a few beyond it,
    redeliveries, and labels (some flipped, a few flipped back) hours to days after their
    transaction."""
    rnd = random.Random(seed)
    txs = [
        tx(f"h{i}", rnd.randrange(20 * 24 * 60) * timedelta(minutes=1),
           f"{rnd.randrange(1, 900)}.{rnd.randrange(100):02d}", card=f"c{rnd.randrange(8)}",
           merchant=f"m{rnd.randrange(4)}", lat=40 + rnd.random(), lon=rnd.random())
        for i in range(300)
    ]  # fmt: skip
    arrival = sorted(txs, key=lambda t: t.timestamp + rnd.choice([0, 0, 0, 2, 9]) * D)
    events: list[tuple[float, Event]] = []
    for order, item in enumerate(arrival):
        events.append((order, item))
        if rnd.random() < 0.05:
            events.append((order + rnd.randrange(1, 20) + 0.5, item))  # redelivered
        if rnd.random() < 0.15:
            later = order + rnd.randrange(5, 60) + 0.25
            delay = rnd.randrange(1, 10 * 24) * H
            events.append((later, label(item, after=delay)))
            if rnd.random() < 0.3:
                events.append((later + 10, label(item, is_fraud=False, after=delay + D)))
                if rnd.random() < 0.5:  # fraud after all: counted at this label's arrival
                    events.append((later + 20, label(item, after=delay + 2 * D)))
    return [event for _, event in sorted(events, key=lambda e: e[0])]


async def _history(events: Sequence[Event], accepted: set[str]) -> AsyncIterator[Event]:
    """What the app keeps: stored transactions in event-time order, each with its last label."""
    last: dict[str, tuple[Label, Transaction]] = {}
    for event in events:
        if not isinstance(event, Transaction):
            last[event[1].transaction_id] = event
    stored = {e.transaction_id: e for e in events if isinstance(e, Transaction)}
    for item in sorted(stored.values(), key=lambda t: (t.timestamp, t.transaction_id)):
        if item.transaction_id in accepted:
            yield item
            if item.transaction_id in last:
                yield last[item.transaction_id]


async def _observe(feature_store: store.RedisFeatureStore) -> list[dict[str, float]]:
    views = [
        await feature_store.card_features(f"c{card}", T0 + days * D)
        for card in range(8)
        for days in (20, 21, 27)
    ]
    probes = [
        tx(f"probe{i}", 21 * D + i * H, "42", card=f"c{i % 8}", merchant=f"m{i % 4}",
           lat=40.5, lon=0.5)
        for i in range(12)
    ]  # fmt: skip
    return views + [r.features for r in await feature_store.score_batch(probes)]


async def test_flush_and_rebuild_gives_identical_features(redis_url: str) -> None:
    client = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/15")  # a database of its own
    try:
        await client.flushdb()
        feature_store = store.RedisFeatureStore(client, FeatureConfig(key_prefix="rb"))
        events = _live_stream(3)
        accepted: set[str] = set()
        for event in events:
            if isinstance(event, Transaction):
                (result,) = await feature_store.score_batch([event])
                if result.status == "fresh":
                    accepted.add(event.transaction_id)
            elif event[1].transaction_id in accepted:  # the app parks labels of unstored ids
                await feature_store.apply_labels([event])
        assert 250 < len(accepted) < 300  # some were rejected as late
        before = await _observe(feature_store)

        await client.flushdb()
        assert await client.dbsize() == 0
        stats = await rebuild.rebuild(feature_store, _history(events, accepted), batch_size=64)
        assert (stats.transactions, stats.duplicates, stats.late) == (len(accepted), 0, 0)
        assert stats.labels > 20
        assert await _observe(feature_store) == before
    finally:
        await client.aclose()


async def test_recent_transactions_get_their_dedup_markers_back(redis_url: str) -> None:
    client = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/15")
    try:
        await client.flushdb()
        feature_store = store.RedisFeatureStore(client, FeatureConfig(key_prefix="rm"))
        history = [tx(f"s{i}", i * D, card="c1") for i in range(6)]
        stats = await rebuild.rebuild(feature_store, history, markers_since=T0 + 4 * D)
        assert stats.transactions == 6
        keys = feature_store.keys
        marked = [await client.exists(keys.card_marker("c1", f"s{i}")) for i in range(6)]
        assert marked == [0, 0, 0, 0, 1, 1]
        (again,) = await feature_store.score_batch([history[5]])
        assert again.status == "duplicate"
        view = await feature_store.card_features("c1", T0 + 6 * D)
        assert view["card_count_7d"] == 6
    finally:
        await client.aclose()
