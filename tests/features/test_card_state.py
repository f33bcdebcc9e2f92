"""The card script's stored layout: a version 1 state (before the window header) is
converted on first use with unchanged features; an unknown version is refused loudly."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import timedelta

import pytest
from fstreams import decode_card_state, tx
from redis import exceptions as redis_errors

from features import store, windows
from features.config import DAY_MS
from features.reference import ReferenceFeatures
from features.schema import Transaction

M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
StoreFactory = Callable[..., store.RedisFeatureStore]


def _version_1_state(history: list[Transaction]) -> bytes:
    """What the version 1 script stored: a 33-byte header, records oldest first."""
    records = sorted((e.ts, e.cents, e.merchant) for e in map(windows.encode, history))
    base = records[0][0] - DAY_MS
    header = struct.pack("<Bdddii", 1, base, records[0][0], -1, 0, 0)
    return header + b"".join(struct.pack("<III", t - base, c, m) for t, c, m in records)


def _card_part(features: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in features.items() if name.startswith("card_")}


async def test_a_version_1_state_is_converted_with_the_same_features(
    make_store: StoreFactory,
) -> None:
    feature_store = make_store()
    ref = ReferenceFeatures(feature_store.config)
    history = [tx(f"h{i}", i * 7 * H, f"{i + 1}.50", merchant=f"m{i % 4}") for i in range(40)]
    for item in history:
        ref.transaction(item)
    state, _ = feature_store.keys.card("c1")
    await feature_store.client.set(state, _version_1_state(history))

    at = history[-1].timestamp + M
    assert await feature_store.card_features("c1", at) == ref.card_features("c1", at)
    # newest, then out of order, then newest again: both paths of the script after conversion
    probes = [tx("p0", 300 * H, "9", merchant="m1"), tx("p1", 150 * H + M, "3"),
              tx("p2", 301 * H, "12", merchant="m9")]  # fmt: skip
    for probe in probes:
        (got,) = await feature_store.score_batch([probe])
        want = ref.transaction(probe)
        assert (got.status, _card_part(got.features)) == (want.status, _card_part(want.features))
    records, _ = decode_card_state(await feature_store.client.get(state))
    assert len(records) == len(history) + len(probes)


async def test_an_unknown_state_version_is_refused(make_store: StoreFactory) -> None:
    feature_store = make_store()
    state, _ = feature_store.keys.card("c1")
    await feature_store.client.set(state, b"\x09" + bytes(200))
    with pytest.raises(redis_errors.ResponseError, match="card state version 9 unknown"):
        await feature_store.score_batch([tx("t1", D)])
    assert await feature_store.client.get(state) == b"\x09" + bytes(200)


@pytest.mark.parametrize("width", [H, D, 7 * D])
async def test_a_late_event_on_a_window_edge_updates_the_window_header(
    make_store: StoreFactory, width: timedelta
) -> None:
    """An out-of-order event exactly one window before the newest record, beside one that
    came in order at the same millisecond, joins that window; the next in-order event, which
    reads the stored windows, sees both leave it."""
    feature_store = make_store()
    ref = ReferenceFeatures(feature_store.config)
    newest = 10 * D
    stream = [tx("b", newest - width, "5"), tx("a", newest, "1"), tx("c", newest - width, "9"),
              tx("d", newest + M, "2"), tx("e", newest + width - M, "3")]  # fmt: skip
    for item in stream:
        (got,) = await feature_store.score_batch([item])
        want = ref.transaction(item)
        assert (got.status, _card_part(got.features)) == (want.status, _card_part(want.features))
