"""RedisFeatureStore on a real Valkey gives exactly the reference's features: on random
streams (Hypothesis), on dense seeded streams, and at every window edge."""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fstreams import T0, label, tx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import store
from features.config import FeatureConfig, FeatureResult
from features.reference import ReferenceFeatures
from features.schema import Label, Transaction

M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
MS = timedelta(milliseconds=1)
StoreFactory = Callable[..., store.RedisFeatureStore]


def assert_same(got: FeatureResult, want: FeatureResult) -> None:
    assert (got.transaction_id, got.status, got.reason) == (
        want.transaction_id,
        want.status,
        want.reason,
    )
    assert list(got.features) == list(want.features)
    for name, value in want.features.items():
        assert math.isclose(got.features[name], value, rel_tol=1e-9, abs_tol=1e-9), name


# --- property: Redis == reference on random streams --------------------------------------

CONFIGS = [
    FeatureConfig(),
    FeatureConfig(lateness=timedelta(days=2), card_max_entries=4),
    FeatureConfig(lateness=timedelta(hours=6)),
]
new_tx = st.tuples(
    st.just("tx"),
    st.integers(0, 1),  # card
    st.integers(0, 2),  # merchant
    st.one_of(st.integers(1, 10_000_000), st.sampled_from([100, 250, 100_000_000])),  # cents
    # minutes on a coarse grid, so that gaps of exactly 1h/1d/7d/30d and hour/day edges
    # (window bounds) are common, plus a millisecond either side of them
    st.one_of(
        st.integers(0, 96).map(lambda k: 30 * k),
        st.integers(0, 70).map(lambda k: 12 * 60 * k),
        st.integers(0, 5 * 24 * 60),
    ),
    st.sampled_from([0, 0, 0, 1, 999]),  # millisecond
    st.one_of(st.none(), st.tuples(st.integers(-3, 3), st.integers(-3, 3))),  # place
    st.sampled_from([None, "pos", "ecom"]),
)
replay = st.tuples(st.just("dup"), st.integers(0, 10**6), st.booleans())  # (index, conflict)
# when the label arrives: (relative to its transaction, else to T0; minutes; millisecond) —
# before, at and long after the transaction, often ahead of the merchant's newest event
label_time = st.tuples(
    st.booleans(),
    st.one_of(
        st.sampled_from([-60, 0, 30, 60, 24 * 60, 2 * 24 * 60, 7 * 24 * 60, 31 * 24 * 60]),
        st.integers(-2, 96).map(lambda k: 30 * k),
        st.integers(-2, 70).map(lambda k: 12 * 60 * k),
        st.integers(-60, 5 * 24 * 60),
    ),
    st.sampled_from([0, 0, 1, 999]),
)
outcome = st.tuples(st.just("label"), st.integers(0, 10**6), st.booleans(), label_time)
batch_break = st.tuples(st.just("flush"))
operations = st.lists(
    st.one_of(new_tx, new_tx, new_tx, replay, outcome, batch_break), min_size=20, max_size=80
)


def _build(op: tuple[Any, ...], n: int) -> Transaction:
    _, card, merchant, cents, minute, ms, place, channel = op
    extra: dict[str, Any] = {"channel": channel} if channel else {}
    if place is not None:
        extra |= {"lat": 45 + place[0] / 10, "lon": 7 + place[1] / 10}
    when = minute * M + timedelta(milliseconds=ms)
    amount = Decimal(cents) / 100
    return tx(f"x{n}", when, amount, card=f"c{card}", merchant=f"m{merchant}", **extra)


async def _run_stream(url: str, config: FeatureConfig, ops: Sequence[tuple[Any, ...]]) -> None:
    client = store.connect(url)
    redis_store = store.RedisFeatureStore(client, config)
    ref = ReferenceFeatures(config)
    seen: list[Transaction] = []
    pending: list[Transaction] = []

    async def flush() -> None:
        if pending:
            got = await redis_store.score_batch(pending)
            for result, item in zip(got, pending, strict=True):
                assert_same(result, ref.transaction(item))
            pending.clear()

    try:
        for op in ops:
            if op[0] == "tx":
                seen.append(_build(op, len(seen)))
                pending.append(seen[-1])
            elif op[0] == "dup" and seen:
                original = seen[op[1] % len(seen)]
                pending.append(
                    original.model_copy(update={"amount": Decimal(7)}) if op[2] else original
                )
            elif op[0] == "label" and seen:
                await flush()
                target = seen[op[1] % len(seen)]
                relative, minute, ms = op[3]
                known = (target.timestamp if relative else T0) + minute * M + ms * MS
                pair = (
                    Label(transaction_id=target.transaction_id, is_fraud=op[2], labeled_at=known),
                    target,
                )
                await redis_store.apply_labels([pair])
                ref.label(*pair)
            else:
                await flush()
        await flush()
        for card in {item.card_id for item in seen}:
            for at in (T0 + 6 * D, T0 + 13 * D):
                assert await redis_store.card_features(card, at) == ref.card_features(card, at)
    finally:
        await client.aclose()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, config=st.sampled_from(CONFIGS))
def test_redis_equals_reference_on_random_streams(
    redis_url: str, ops: list[tuple[Any, ...]], config: FeatureConfig
) -> None:
    prefixed = FeatureConfig(
        lateness=config.lateness,
        card_max_entries=config.card_max_entries,
        key_prefix=f"p{uuid.uuid4().hex[:10]}",
    )
    loop = asyncio.new_event_loop()  # its own loop: the session loop is not running here
    try:
        loop.run_until_complete(_run_stream(redis_url, prefixed, ops))
    finally:
        loop.close()


def _dense_stream(seed: int, size: int) -> list[tuple[Any, ...]]:
    """Many events of two cards and three merchants on a half-hour grid: every window edge
    is hit exactly many times."""
    rnd = random.Random(seed)
    ops: list[tuple[Any, ...]] = []
    for _ in range(size):
        roll = rnd.random()
        if roll < 0.08:
            ops.append(("dup", rnd.randrange(10**6), rnd.random() < 0.2))
        elif roll < 0.18:
            known = (rnd.random() < 0.8, rnd.choice([-30, 0, 30, 60 * 24, 60 * 24 * 8]) +
                     30 * rnd.randrange(48), rnd.choice([0, 0, 1, 999]))  # fmt: skip
            ops.append(("label", rnd.randrange(10**6), rnd.random() < 0.7, known))
        elif roll < 0.25:
            ops.append(("flush",))
        else:
            minute = 30 * rnd.randrange(3 * 48) + 24 * 60 * rnd.choice([0, 0, 1, 7, 30, 31, 37])
            place = (rnd.randrange(3), rnd.randrange(3)) if rnd.random() < 0.6 else None
            ops.append(("tx", rnd.randrange(2), rnd.randrange(3), rnd.choice([100, 250, 999]),
                        minute, rnd.choice([0, 0, 1, 999]), place, None))  # fmt: skip
    return ops


@pytest.mark.parametrize("config", CONFIGS)
async def test_redis_equals_reference_on_dense_streams(
    redis_url: str, config: FeatureConfig
) -> None:
    for seed in range(3):
        prefixed = FeatureConfig(
            lateness=config.lateness,
            card_max_entries=config.card_max_entries,
            key_prefix=f"q{uuid.uuid4().hex[:10]}",
        )
        await _run_stream(redis_url, prefixed, _dense_stream(seed, 400))


@pytest.mark.parametrize("width", [H, D, 7 * D, 30 * D])
async def test_window_edges_match_the_reference(make_store: StoreFactory, width: timedelta) -> None:
    """An event exactly one window width later sees the first; one millisecond later not."""
    feature_store = make_store()
    ref = ReferenceFeatures(feature_store.config)
    first = tx("e0", 0 * M, "5", merchant="m0")
    stream: list[Transaction | tuple[Label, Transaction]] = [first, label(first)]
    ms = timedelta(milliseconds=1)
    for i, at in enumerate([width - ms, width, width + ms]):
        stream.append(tx(f"e{i + 1}", at, "7", card=f"c{i}", merchant="m0"))
        stream.append(tx(f"f{i + 1}", at, "7", card="c1", merchant=f"n{i}"))
    for event in stream:
        if isinstance(event, Transaction):
            (got,) = await feature_store.score_batch([event])
            assert_same(got, ref.transaction(event))
        else:
            await feature_store.apply_labels([event])
            ref.label(*event)
