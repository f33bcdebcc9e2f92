"""The merchant script's stored layout (version 3): a version 2 state (hour buckets before
day buckets, no window sums in the header) is converted on first use with unchanged
features, an unknown version is refused loudly, and the state stays bounded."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import timedelta

import pytest
from fstreams import T0, label, tx
from redis import exceptions as redis_errors

from features import store
from features.schema import Transaction

M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
HEADER, V2_HEADER, BUCKET = 77, 13, 22
StoreFactory = Callable[..., store.RedisFeatureStore]


def _as_version_2(raw: bytes) -> bytes:
    """The same buckets as the version 2 script stored them: hours first, no header sums."""
    version, newest, hours, days = struct.unpack_from("<BdHH", raw)
    assert version == 3
    day_part = raw[HEADER : HEADER + days * BUCKET]
    hour_part = raw[HEADER + days * BUCKET :]
    return struct.pack("<BdHH", 2, newest, hours, days) + hour_part + day_part


def _merchant_part(features: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in features.items() if name.startswith("merchant_")}


async def _state(feature_store: store.RedisFeatureStore) -> bytes:
    raw = await feature_store.client.get(feature_store.keys.merchant("shop")[0])
    assert raw is not None
    return bytes(raw)


async def test_a_version_2_state_is_converted_with_the_same_features(
    make_store: StoreFactory,
) -> None:
    fresh, converted = make_store(), make_store()
    history = [tx(f"h{i}", T0 + i * 5 * H + i * M, f"{i + 1}.25", card=f"c{i % 3}",
                  merchant="shop") for i in range(60)]  # fmt: skip
    labels = [label(history[i], True, at=T0 + i * 5 * H + 2 * D) for i in range(0, 60, 7)]
    for feature_store in (fresh, converted):
        for item in history:
            await feature_store.score_batch([item])
        await feature_store.apply_labels(labels)
    state_key, _ = converted.keys.merchant("shop")
    await converted.client.set(state_key, _as_version_2(await _state(converted)))

    newest = history[-1].timestamp
    # same day as the newest event, a later day, out of order, then a flip and a new day
    probes: list[Transaction | None] = [
        tx("p0", newest + 10 * M, "7", card="c1", merchant="shop"),
        tx("p1", newest + D + 3 * H, "8", card="c1", merchant="shop"),
        tx("p2", newest - 3 * D, "9", card="c2", merchant="shop"),
        None,
        tx("p3", newest + 5 * D, "10", card="c1", merchant="shop"),
    ]
    for probe in probes:
        if probe is None:
            for feature_store in (fresh, converted):
                await feature_store.apply_labels([label(history[49], False, at=newest + D)])
            continue
        (want,) = await fresh.score_batch([probe])
        (got,) = await converted.score_batch([probe])
        assert (got.status, _merchant_part(got.features)) == (
            want.status,
            _merchant_part(want.features),
        )
    assert (await _state(converted))[0] == 3
    assert await _state(converted) == await _state(fresh)


@pytest.mark.parametrize("version", [1, 4])
async def test_an_unknown_merchant_layout_is_refused(
    make_store: StoreFactory, version: int
) -> None:
    feature_store = make_store()
    state_key, _ = feature_store.keys.merchant("shop")
    raw = struct.pack("<BdHH", version, -1, 0, 0) + bytes(HEADER - V2_HEADER)
    await feature_store.client.set(state_key, raw)
    with pytest.raises(redis_errors.ResponseError, match=f"layout {version}, expected 3"):
        await feature_store.score_batch([tx("x", T0, merchant="shop")])
    assert await feature_store.client.get(state_key) == raw


async def test_the_state_stays_bounded_whatever_the_volume(make_store: StoreFactory) -> None:
    feature_store = make_store()
    config = feature_store.config
    largest = 0
    for i in range(60 * 12):  # 60 days, one payment every 2 hours
        await feature_store.score_batch(
            [tx(f"x{i}", T0 + i * 2 * H, card=f"c{i}", merchant="shop")]
        )
        largest = max(largest, len(await _state(feature_store)))
    # hour buckets are dropped when the day changes: up to 23 hours more than kept
    hours = (config.merchant_keep_hours + 24) // 2 + 1
    assert largest <= HEADER + BUCKET * (hours + config.merchant_keep_days + 1)
