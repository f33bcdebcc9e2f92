"""Merchant fraud labels counted by their arrival (``labeled_at``), in Redis and the reference:
which labels count, at which bucket edges, and what flips and repeats do."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from fstreams import T0, label, tx
from redis import exceptions as redis_errors

from features import store
from features.reference import MemoryFeatureStore
from features.schema import Transaction

#: Both feature stores under test (the port they share is the service's, in app.core.ports).
Store = store.RedisFeatureStore | MemoryFeatureStore

MS, M, H, D = (timedelta(milliseconds=1), timedelta(minutes=1), timedelta(hours=1),
               timedelta(days=1))  # fmt: skip
ARRIVED = tuple(f"merchant_fraud_labels_arrived_{w}" for w in ("1d", "7d", "30d"))
#: The scored transaction: day 40, 12:45; its windows end at 12:00 (the start of its hour).
T = T0 + 40 * D + 12 * H + 45 * M
HOUR_START = T0 + 40 * D + 12 * H


@pytest.fixture(params=["reference", "redis"])
def feature_store(
    request: pytest.FixtureRequest, make_store: Callable[..., store.RedisFeatureStore]
) -> Store:
    return MemoryFeatureStore() if request.param == "reference" else make_store()


class Merchant:
    """One merchant's stream: payments on cards of their own, labels, and probes (new
    transactions, by default at ``T``, whose features are read)."""

    def __init__(self, feature_store: Store) -> None:
        self.store = feature_store
        self.payments = 0
        self.probes = 0

    async def pay(self, at: datetime) -> Transaction:
        self.payments += 1
        item = tx(f"x{self.payments}", at, card=f"c{self.payments}", merchant="shop")
        (result,) = await self.store.score_batch([item])
        assert result.status == "fresh"
        return item

    async def label(self, item: Transaction, known: datetime, is_fraud: bool = True) -> None:
        await self.store.apply_labels([label(item, is_fraud, at=known)])

    async def probe(self, at: datetime = T, *, again: bool = False) -> dict[str, float]:
        """Features of a new probe, or ``again`` those of the previous probe resent."""
        self.probes += 0 if again else 1
        item = tx(f"p{self.probes}", at, card="probe", merchant="shop")
        (result,) = await self.store.score_batch([item])
        assert result.status == ("duplicate" if again else "fresh")
        return result.features

    async def arrived(self, at: datetime = T, *, again: bool = False) -> tuple[float, ...]:
        features = await self.probe(at, again=again)
        return tuple(features[name] for name in ARRIVED)


@pytest.mark.parametrize(
    ("known", "expected"),
    [
        (T + H, (0, 0, 0)),  # arrives after t
        (T - 10 * M, (0, 0, 0)),  # before t, but in t's own hour (not visible yet)
        (HOUR_START - MS, (1, 1, 1)),
        (HOUR_START - 24 * H, (1, 1, 1)),  # the 1d window's first hour
        (HOUR_START - 24 * H - MS, (0, 1, 1)),
        (T - 2 * D, (0, 1, 1)),  # two days before: 7d and 30d, not 1d
        (T0 + 33 * D, (0, 1, 1)),  # the 7d window's first whole day
        (T0 + 33 * D - MS, (0, 0, 1)),
        (T0 + 10 * D, (0, 0, 1)),  # the 30d window's first whole day
        (T0 + 10 * D - MS, (0, 0, 0)),
    ],
)
async def test_a_fraud_label_counts_where_it_arrived(
    feature_store: Store, known: datetime, expected: tuple[int, ...]
) -> None:
    shop = Merchant(feature_store)
    old = await shop.pay(T0 + 10 * H)
    await shop.label(old, known)
    features = await shop.probe()
    assert tuple(features[name] for name in ARRIVED) == expected
    # counted by the transaction's time, the 40-day-old fraud is in no window
    assert features["merchant_fraud_count_30d"] == 0.0


async def test_arrived_counts_see_what_transaction_time_counts_miss(
    feature_store: Store,
) -> None:
    shop = Merchant(feature_store)
    frauds = [await shop.pay(T - 9 * D + i * H) for i in range(3)]
    for item in frauds:
        await shop.label(item, T - 2 * D)
    features = await shop.probe()
    assert (features["merchant_fraud_count_7d"], features["merchant_fraud_count_30d"]) == (0, 3)
    assert tuple(features[name] for name in ARRIVED) == (0, 3, 3)


async def test_only_labels_received_before_scoring_count(feature_store: Store) -> None:
    shop = Merchant(feature_store)
    old = await shop.pay(T0 + 38 * D)
    assert await shop.arrived() == (0, 0, 0)
    await shop.label(old, T - 2 * H)  # arrived before T, but received after that probe
    assert await shop.arrived(again=True) == (0, 0, 0)  # resent: its stored features
    assert await shop.arrived() == (1, 1, 1)  # a new transaction at T sees it


async def test_the_same_label_twice_and_a_later_repeat_change_nothing(
    feature_store: Store,
) -> None:
    shop = Merchant(feature_store)
    first, second = await shop.pay(T0 + 30 * D), await shop.pay(T0 + 31 * D)
    await shop.label(first, T - 2 * D)
    await shop.label(first, T - 2 * D)
    await shop.label(first, T - 2 * H)  # fraud again, later: the first arrival stays
    assert await shop.arrived() == (0, 1, 1)
    await shop.label(second, T - 2 * H)
    assert await shop.arrived() == (1, 2, 2)


async def test_a_flip_takes_back_what_the_fraud_label_added(
    feature_store: Store,
) -> None:
    shop = Merchant(feature_store)
    item = await shop.pay(T0 + 35 * D)
    await shop.label(item, T - 2 * H)
    assert await shop.arrived() == (1, 1, 1)
    # the legit label arrives in another bucket: the fraud label's own bucket goes down
    await shop.label(item, T - 3 * D, is_fraud=False)
    assert await shop.arrived() == (0, 0, 0)
    await shop.label(item, T - 3 * D, is_fraud=False)  # a repeated flip does nothing
    await shop.label(item, T - 3 * H)  # fraud again: counted at its own arrival
    assert await shop.arrived() == (1, 1, 1)
    await shop.label(item, T - 3 * H, is_fraud=False)
    assert await shop.arrived() == (0, 0, 0)


async def test_a_label_stamped_before_its_transaction_counts_at_the_transaction(
    feature_store: Store,
) -> None:
    shop = Merchant(feature_store)
    item = await shop.pay(T - 13 * H)
    await shop.label(item, T - 20 * D)  # clock skew: known before it happened
    assert await shop.arrived() == (1, 1, 1)


async def test_arrival_buckets_ahead_of_the_newest_event_are_kept_then_trimmed(
    make_store: Callable[..., store.RedisFeatureStore],
) -> None:
    feature_store = make_store()
    shop = Merchant(feature_store)
    items = [await shop.pay(T0 + i * M) for i in range(50)]
    for i, item in enumerate(items):  # as a rebuild applies them: far ahead of the merchant
        await shop.label(item, T0 + 20 * D + i * H)
    state_key, fraud_key = feature_store.keys.merchant("shop")
    bucket = 22
    raw = await feature_store.client.get(state_key)
    assert raw is not None
    assert len(raw) == 77 + bucket * (1 + 50 + 1 + 3)  # 1 + 50 hours, 1 + 3 days
    # 1d = [day 21 03:00, day 22 03:00): the labels of hours 27 to 49
    assert await shop.arrived(T0 + 22 * D + 3 * H) == (23, 50, 50)
    await shop.pay(T0 + 80 * D)  # everything before is behind the horizon now
    raw = await feature_store.client.get(state_key)
    assert raw is not None and len(raw) == 77 + 2 * bucket
    assert await feature_store.client.zcard(fraud_key) == 0


async def test_a_merchant_state_of_another_layout_is_refused(
    make_store: Callable[..., store.RedisFeatureStore],
) -> None:
    feature_store = make_store()
    state_key, _ = feature_store.keys.merchant("shop")
    await feature_store.client.set(state_key, struct.pack("<BdHH", 1, -1, 0, 0))
    with pytest.raises(redis_errors.ResponseError, match="features rebuild"):
        await feature_store.score_batch([tx("v1", T, merchant="shop")])
