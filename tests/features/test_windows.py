"""Table-driven tests of the pure window arithmetic and the feature derivations."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from fstreams import tx

from features import definitions, windows
from features.config import DAY_MS, HOUR_MS, FeatureConfig, late_reason


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), 1),
        (datetime(1970, 1, 1, 0, 0, 0, 999, tzinfo=UTC), 0),  # floored, not rounded
        (datetime(1970, 1, 2, 2, tzinfo=timezone(timedelta(hours=2))), DAY_MS),
        (datetime(2026, 1, 5, tzinfo=UTC), 1_767_571_200_000),
    ],
)
def test_event_ms(moment: datetime, expected: int) -> None:
    assert windows.event_ms(moment) == expected


@pytest.mark.parametrize(
    ("amount", "cents"),
    [("12.345", 1234), ("12.355", 1236), ("0.005", 0), ("0.015", 2), ("1000000", 100_000_000)],
)
def test_amounts_are_half_even_cents(amount: str, cents: int) -> None:
    assert windows.to_cents(Decimal(amount)) == cents


@pytest.mark.parametrize(
    ("event", "newest", "keep", "expected"),
    [
        # no history: 24 whole hours and 7/30 whole days before the event's hour
        (10 * DAY_MS + 5 * HOUR_MS + 1, None, (193, 38), (221, 245, 240, -20, 3, 10)),
        # an event on an hour boundary does not read its own hour
        (5 * HOUR_MS, None, (193, 38), (-19, 5, 0, -30, -7, 0)),
        # far behind the merchant's newest event: every range clipped empty
        (10 * DAY_MS, 20 * DAY_MS, (48, 5), (432, 240, 432, 15, 15, 10)),
        # a day behind, within the kept horizon: nothing clipped
        (10 * DAY_MS, 11 * DAY_MS, (193, 38), (216, 240, 240, -20, 3, 10)),
    ],
)
def test_merchant_ranges(
    event: int, newest: int | None, keep: tuple[int, int], expected: tuple[int, ...]
) -> None:
    assert tuple(windows.merchant_ranges(event, newest, *keep)) == expected


@pytest.mark.parametrize(
    ("points", "km"),
    [
        ((48.8566, 2.3522, 48.8566, 2.3522), 0.0),
        ((0.0, 0.0, 0.0, 1.0), 111.195),
        ((48.8566, 2.3522, 51.5074, -0.1278), 343.56),  # Paris - London
        ((0.0, 179.5, 0.0, -179.5), 111.195),  # across the antimeridian
    ],
)
def test_haversine(points: tuple[float, float, float, float], km: float) -> None:
    assert windows.haversine_km(*points) == pytest.approx(km, abs=0.05)


@pytest.mark.parametrize(
    ("mcc", "group"),
    [
        ("5411", "everyday"), ("5814", "everyday"), ("3005", "travel"), ("4511", "travel"),
        ("5815", "digital"), ("6011", "cash_like"), ("7995", "cash_like"),
        ("5732", "high_resale"), ("5944", "high_resale"), ("5311", "retail"),
        ("5999", "retail"), ("8398", "other"), ("0001", "other"), (None, None),
    ],
)  # fmt: skip
def test_mcc_groups(mcc: str | None, group: str | None) -> None:
    assert definitions.mcc_group(mcc) == group


def test_transaction_features_of_a_saturday_night_cash_withdrawal() -> None:
    saturday = datetime(2026, 1, 10, 3, 30, tzinfo=UTC)
    values = definitions.transaction_features(
        tx("t", saturday, "12.50", channel="atm", merchant_category="6011")
    )
    assert values["amount"] == 12.5
    assert values["amount_log"] == pytest.approx(math.log1p(12.5))
    assert (values["hour_of_day"], values["is_weekend"], values["is_night"]) == (3.0, 1.0, 1.0)
    assert values["hour_sin"] == pytest.approx(math.sin(2 * math.pi * 3.5 / 24))
    assert [values[f"channel_{c}"] for c in definitions.CHANNELS] == [0.0, 0.0, 1.0, 0.0]
    groups = {g: values[f"mcc_{g}"] for g in definitions.MCC_GROUP_NAMES}
    assert groups == {g: float(g == "cash_like") for g in definitions.MCC_GROUP_NAMES}


def test_transaction_without_channel_or_category_is_all_zero_one_hot() -> None:
    values = definitions.transaction_features(tx("t", timedelta(hours=12)))
    one_hot = [n for n in definitions.TRANSACTION_FEATURES if n.startswith(("channel", "mcc"))]
    assert [values[n] for n in one_hot] == [0.0] * len(one_hot)
    assert (values["is_weekend"], values["is_night"]) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("count", "total", "squares", "cents", "z"),
    [
        (2, 300, 100.0**2 + 200.0**2, 300, 3.0),  # mean 150, std 50
        (3, 6000, 1000.0**2 + 3000.0**2 + 2000.0**2, 4000, math.sqrt(6)),
        (1, 500, 500.0**2, 900, 0.0),  # one amount: no spread yet
        (3, 300, 3 * 100.0**2, 900, 0.0),  # identical amounts: no spread
        (0, 0, 0.0, 900, 0.0),
    ],
)
def test_zscore(count: int, total: int, squares: float, cents: int, z: float) -> None:
    assert definitions._zscore(count, total, squares, cents) == pytest.approx(z)


def test_feature_names_are_unique_and_the_set_id_is_stable() -> None:
    names = definitions.FEATURE_NAMES
    assert len(names) == len(set(names)) == 62
    expected = hashlib.sha256("\n".join((definitions.DEFINITION_VERSION, *names)).encode())
    assert expected.hexdigest()[:12] == definitions.FEATURE_SET_ID
    assert names[:2] == ("amount", "amount_log")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lateness": timedelta(days=18)}, "lateness"),
        ({"lateness": timedelta(seconds=-1)}, "lateness"),
        ({"card_max_entries": 0}, "card_max_entries"),
        ({"dedup_ttl": timedelta(0)}, "dedup_ttl"),
        ({"key_prefix": "a{b}"}, "key_prefix"),
        ({"key_prefix": ""}, "key_prefix"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FeatureConfig(**kwargs)  # type: ignore[arg-type]


def test_config_derived_horizons() -> None:
    config = FeatureConfig(lateness=timedelta(days=7))
    assert config.card_retention_ms == 37 * DAY_MS
    assert (config.merchant_keep_hours, config.merchant_keep_days) == (193, 38)
    assert FeatureConfig(lateness=timedelta(hours=1)).merchant_keep_hours == 26


def test_late_reason_is_stable_text() -> None:
    assert late_reason(0, 8 * DAY_MS, 7 * DAY_MS) == (
        "late_event: 8.00 days behind the card's newest event (bound 7 days)"
    )
