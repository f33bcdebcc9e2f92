"""The reference implementation on small streams with hand-computed expectations."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from fstreams import T0, label, tx

from features import definitions, windows
from features.config import CONFLICT, FeatureConfig
from features.reference import MemoryFeatureStore, ReferenceFeatures

M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


@pytest.fixture
def ref() -> ReferenceFeatures:
    return ReferenceFeatures(FeatureConfig())


def features_of(ref: ReferenceFeatures, *stream: object) -> list[dict[str, float]]:
    out = []
    for item in stream:
        result = ref.transaction(item)  # type: ignore[arg-type]
        out.append(result.features)
    return out


def test_card_windows_are_half_open_and_exclude_the_transaction(ref: ReferenceFeatures) -> None:
    first, second, third, fourth = features_of(
        ref,
        tx("t1", 0 * M, "10", merchant="m1"),
        tx("t2", 30 * M, "30", merchant="m2"),
        tx("t3", 90 * M, "20", merchant="m1"),
        tx("t4", D + 30 * M, "40", merchant="m3"),
    )
    assert first["card_count_30d"] == 0 and first["card_has_history"] == 0.0
    assert first["card_seconds_since_prev"] == -1.0 and first["card_age_seconds"] == 0.0
    assert first["card_first_time_merchant_30d"] == 1.0
    # t3 at 1:30: the 1h window [0:30, 1:30) holds t2 (its lower bound is inclusive)
    expected_t3 = {
        "card_count_1h": 1.0, "card_sum_1h": 30.0, "card_count_1d": 2.0, "card_sum_1d": 40.0,
        "card_mean_1d": 20.0, "card_max_1d": 30.0, "card_distinct_merchants_1d": 2.0,
        "card_first_time_merchant_30d": 0.0, "card_seconds_since_prev": 3600.0,
        "card_age_seconds": 5400.0, "card_has_history": 1.0,
    }  # fmt: skip
    assert {k: third[k] for k in expected_t3} == expected_t3
    # t4 a day later: 1d = [0:30, next day 0:30) holds t2 and t3, not t1
    expected_t4 = {
        "card_count_1h": 0.0, "card_count_1d": 2.0, "card_sum_1d": 50.0, "card_mean_1d": 25.0,
        "card_count_7d": 3.0, "card_sum_7d": 60.0, "card_mean_7d": 20.0, "card_max_7d": 30.0,
        "card_distinct_merchants_7d": 2.0, "card_first_time_merchant_30d": 1.0,
        "card_seconds_since_prev": 82800.0, "card_age_seconds": 88200.0,
        "card_amount_to_mean_30d": 2.0,
    }  # fmt: skip
    assert {k: fourth[k] for k in expected_t4} == expected_t4
    # 10, 30, 20: mean 20, population std sqrt(200/3); (40 - 20) / std = sqrt(6)
    assert fourth["card_amount_zscore_30d"] == pytest.approx(math.sqrt(6))
    assert second["card_amount_zscore_30d"] == 0.0  # a single earlier amount has no spread


def test_same_millisecond_is_not_before(ref: ReferenceFeatures) -> None:
    _, same = features_of(ref, tx("a", H, "10"), tx("b", H, "20"))
    assert same["card_count_1h"] == 0.0 and same["card_seconds_since_prev"] == -1.0


def test_distance_and_speed_from_the_previous_located_transaction(ref: ReferenceFeatures) -> None:
    paris, london = {"lat": 48.8566, "lon": 2.3522}, {"lat": 51.5074, "lon": -0.1278}
    _, hop, unplaced, after = features_of(
        ref,
        tx("p", 0 * M, card="g", **paris),
        tx("l", 30 * M, card="g", **london),
        tx("x", 40 * M, card="g"),
        tx("q", 60 * M, card="g", **paris),
    )
    km = windows.haversine_km(48.8566, 2.3522, 51.5074, -0.1278)
    assert km == pytest.approx(343.56, abs=0.05)
    assert hop["card_geo_has_prev"] == 1.0 and hop["card_distance_km_prev"] == km
    assert hop["card_speed_kmh_prev"] == pytest.approx(km * 2)  # 30 minutes
    assert (unplaced["card_geo_has_prev"], unplaced["card_distance_km_prev"]) == (0.0, 0.0)
    assert after["card_distance_km_prev"] == pytest.approx(km)  # from London, 30 min before
    assert after["card_speed_kmh_prev"] == pytest.approx(km * 2)


def test_late_events_are_rejected_beyond_the_bound_and_accepted_at_it(
    ref: ReferenceFeatures,
) -> None:
    assert ref.transaction(tx("new", 10 * D, card="l")).status == "fresh"
    late = ref.transaction(tx("old", 2 * D, card="l"))
    assert (late.status, late.features) == ("late", {})
    assert late.reason is not None and late.reason.startswith("late_event: 8.00 days")
    at_bound = ref.transaction(tx("edge", 3 * D, card="l"))
    assert at_bound.status == "fresh" and at_bound.features["card_count_30d"] == 0.0
    # the rejected one was counted nowhere
    probe = ref.transaction(tx("probe", 11 * D, card="l", merchant="m1")).features
    assert probe["card_count_30d"] == 2.0 and probe["merchant_count_30d"] == 2.0


def test_duplicates_return_the_stored_features_and_change_nothing(ref: ReferenceFeatures) -> None:
    original = ref.transaction(tx("d1", H, "10"))
    ref.transaction(tx("d2", 2 * H, "20"))
    again = ref.transaction(tx("d1", H, "10"))
    assert (again.status, again.reason, again.features) == ("duplicate", None, original.features)
    changed = ref.transaction(tx("d1", H, "99"))
    assert (changed.status, changed.reason) == ("duplicate", CONFLICT)
    assert changed.features["card_count_1d"] == original.features["card_count_1d"]
    assert ref.transaction(tx("d3", 3 * H)).features["card_count_1d"] == 2.0


def test_cap_keeps_the_newest_records() -> None:
    ref = ReferenceFeatures(FeatureConfig(card_max_entries=2))
    *_, last = features_of(
        ref, *(tx(f"c{i}", i * M, str(10 * (i + 1))) for i in range(3)), tx("c3", 3 * M, "1")
    )
    assert (last["card_count_1h"], last["card_sum_1h"]) == (2.0, 50.0)
    assert last["card_age_seconds"] == 180.0  # first-seen survives the cap


def test_merchant_windows_end_at_the_start_of_the_hour(ref: ReferenceFeatures) -> None:
    def at(i: str, when: timedelta, amount: str) -> dict[str, float]:
        return ref.transaction(tx(i, when, amount, card=i, merchant="shop")).features

    at("a", 10 * H + 15 * M, "5")
    at("b", 10 * H + 45 * M, "7")
    third = at("c", 11 * H + 5 * M, "11")
    assert (third["merchant_count_1d"], third["merchant_sum_1d"]) == (2.0, 12.0)
    same_hour_late = at("d", 10 * H + 50 * M, "3")
    assert same_hour_late["merchant_count_1d"] == 0.0
    next_day = at("e", D + 30 * M, "1")
    expected = {"merchant_count_1d": 4.0, "merchant_sum_1d": 26.0, "merchant_count_7d": 4.0}
    assert {k: next_day[k] for k in expected} == expected


def test_merchant_fraud_counts_follow_labels_received_before_scoring(
    ref: ReferenceFeatures,
) -> None:
    first = tx("f1", 10 * H, "5", card="x", merchant="bad")
    ref.transaction(first)
    for i in range(3):
        ref.transaction(tx(f"f{i + 2}", 11 * H + i * M, "5", card=f"y{i}", merchant="bad"))

    def probe(i: int) -> dict[str, float]:
        return ref.transaction(tx(f"p{i}", D + i * M, "5", card=f"p{i}", merchant="bad")).features

    assert probe(0)["merchant_fraud_count_1d"] == 0.0
    ref.label(*label(first))
    ref.label(*label(first))  # the same label twice counts once
    seen = probe(1)
    assert (seen["merchant_fraud_count_1d"], seen["merchant_fraud_count_30d"]) == (1.0, 1.0)
    assert seen["merchant_fraud_ratio_1d"] == 0.25  # 1 of the 4 earlier transactions
    ref.label(*label(first, is_fraud=False))  # flipped
    assert probe(2)["merchant_fraud_count_1d"] == 0.0


def test_card_fraud_flag_covers_30_days(ref: ReferenceFeatures) -> None:
    first = tx("k1", 0 * M, card="k")
    ref.transaction(first)
    ref.label(*label(first))
    assert ref.transaction(tx("k2", 29 * D, card="k")).features["card_fraud_30d"] == 1.0
    assert ref.transaction(tx("k3", 30 * D + M, card="k")).features["card_fraud_30d"] == 0.0


def test_card_features_debug_view(ref: ReferenceFeatures) -> None:
    ref.transaction(tx("v1", 0 * M, "10", card="v"))
    view = ref.card_features("v", T0 + H)  # the lower bound of [t - 1h, t) is inclusive
    assert set(view) == set(definitions.CARD_HISTORY_FEATURES)
    assert (view["card_count_1h"], view["card_seconds_since_prev"]) == (1.0, 3600.0)
    later = ref.card_features("v", T0 + H + timedelta(milliseconds=1))
    assert (later["card_count_1h"], later["card_count_1d"]) == (0.0, 1.0)
    assert ref.card_features("v", T0)["card_count_1h"] == 0.0  # not strictly before


async def test_memory_store_implements_the_protocol() -> None:
    store = MemoryFeatureStore()
    first = tx("m1", H)
    assert [r.status for r in await store.score_batch([first, first])] == ["fresh", "duplicate"]
    await store.apply_labels([label(first)])
    assert (await store.card_features("c1", T0 + 2 * H))["card_fraud_30d"] == 1.0
    assert (await store.score_batch([tx("m2", 2 * H)]))[0].features["card_fraud_30d"] == 1.0


def test_feature_order_is_the_published_one(ref: ReferenceFeatures) -> None:
    (only,) = features_of(ref, tx("o", H))
    assert tuple(only) == definitions.FEATURE_NAMES
    assert all(isinstance(v, float) for v in only.values())
