"""Feature names and how raw aggregates become feature values (table: features/README.md).

Every feature is a float. :data:`FEATURE_NAMES` fixes the order; :data:`FEATURE_SET_ID` is a
short hash of the names and :data:`DEFINITION_VERSION`, stored by models with their
snapshots so that a model never scores features it was not trained on.

>>> len(FEATURE_NAMES), len(FEATURE_SET_ID)
(62, 12)
>>> mcc_group("5411"), mcc_group("3005"), mcc_group("8398"), mcc_group(None)
('everyday', 'travel', 'other', None)
"""

from __future__ import annotations

import functools
import hashlib
import math

from features.config import HOUR_MS
from features.schema import Transaction
from features.windows import (
    MIN_SPEED_STEP_HOURS,
    CardAggregates,
    MerchantAggregates,
    haversine_km,
)

#: Bump when the meaning of any feature changes (not only its name).
DEFINITION_VERSION = "3"

CARD_WINDOWS = ("1h", "1d", "7d", "30d")
MERCHANT_WINDOWS = ("1d", "7d", "30d")
CHANNELS = ("pos", "ecom", "atm", "moto")
#: Merchant-category groups: (name, inclusive MCC ranges). Unlisted codes are ``other``.
MCC_GROUPS: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("everyday", ((4111, 4131), (5411, 5499), (5541, 5542), (5811, 5814), (5912, 5912))),
    (
        "travel",
        ((3000, 3999), (4411, 4411), (4511, 4511), (4722, 4722), (7011, 7012), (7512, 7512)),
    ),
    ("digital", ((4814, 4816), (4899, 4899), (5815, 5818), (5967, 5967))),
    (
        "cash_like",
        ((4829, 4829), (6010, 6012), (6050, 6051), (6540, 6540), (7800, 7802), (7995, 7995)),
    ),
    ("high_resale", ((5045, 5045), (5094, 5094), (5732, 5732), (5944, 5944), (5946, 5946))),
    ("retail", ((5300, 5399), (5600, 5699), (5999, 5999))),
)
MCC_GROUP_NAMES = (*(name for name, _ in MCC_GROUPS), "other")

TRANSACTION_FEATURES = (
    "amount",
    "amount_log",
    "hour_of_day",
    "hour_sin",
    "hour_cos",
    "is_weekend",
    "is_night",
    *(f"channel_{c}" for c in CHANNELS),
    *(f"mcc_{g}" for g in MCC_GROUP_NAMES),
)
CARD_HISTORY_FEATURES = (
    *(f"card_{stat}_{w}" for w in CARD_WINDOWS for stat in ("count", "sum", "mean", "max")),
    *(f"card_distinct_merchants_{w}" for w in ("1d", "7d", "30d")),
    "card_seconds_since_prev",
    "card_age_seconds",
    "card_has_history",
    "card_fraud_30d",
)
CARD_FEATURES = (
    *CARD_HISTORY_FEATURES,
    "card_amount_to_mean_30d",
    "card_amount_zscore_30d",
    "card_first_time_merchant_30d",
    "card_geo_has_prev",
    "card_distance_km_prev",
    "card_speed_kmh_prev",
)
MERCHANT_FEATURES = (
    *(f"merchant_{stat}_{w}" for w in MERCHANT_WINDOWS for stat in ("count", "sum")),
    *(f"merchant_fraud_{stat}_{w}" for w in MERCHANT_WINDOWS for stat in ("count", "ratio")),
    *(f"merchant_fraud_labels_arrived_{w}" for w in MERCHANT_WINDOWS),
)
FEATURE_NAMES: tuple[str, ...] = (*TRANSACTION_FEATURES, *CARD_FEATURES, *MERCHANT_FEATURES)
FEATURE_SET_ID: str = hashlib.sha256(
    "\n".join((DEFINITION_VERSION, *FEATURE_NAMES)).encode()
).hexdigest()[:12]


def mcc_group(mcc: str | None) -> str | None:
    """The group of a merchant category code, ``None`` when no code was given."""
    if mcc is None:
        return None
    code = int(mcc)
    for name, ranges in MCC_GROUPS:
        if any(lo <= code <= hi for lo, hi in ranges):
            return name
    return "other"


def transaction_features(tx: Transaction) -> dict[str, float]:
    """Features of the transaction alone (no history); times are UTC."""
    return dict(zip(TRANSACTION_FEATURES, _transaction_values(tx), strict=True))


_NO_CHANNEL = (0.0,) * len(CHANNELS)
#: One-hot channel flags by channel (absent: all 0); looked up, not rebuilt per transaction.
_CHANNEL_FLAGS = {c: tuple(1.0 if c == other else 0.0 for other in CHANNELS) for c in CHANNELS}


@functools.lru_cache(maxsize=16384)  # 4-digit codes: at most 10,001 keys
def _mcc_flags(mcc: str | None) -> tuple[float, ...]:
    group = mcc_group(mcc)
    return tuple(1.0 if group == name else 0.0 for name in MCC_GROUP_NAMES)


@functools.lru_cache(maxsize=24 * 60)
def _clock(hour: int, minute: int) -> tuple[float, float, float]:
    """The hour and the sine and cosine of the time of day (one entry per minute)."""
    angle = 2 * math.pi * (hour + minute / 60) / 24
    return float(hour), math.sin(angle), math.cos(angle)


def _transaction_values(tx: Transaction) -> list[float]:
    moment = tx.timestamp
    amount = float(tx.amount)
    return [
        amount,
        math.log1p(amount),
        *_clock(moment.hour, moment.minute),
        1.0 if moment.weekday() >= 5 else 0.0,
        1.0 if moment.hour < 6 else 0.0,
        *_CHANNEL_FLAGS.get(tx.channel or "", _NO_CHANNEL),
        *_mcc_flags(tx.merchant_category),
    ]


def card_history_features(agg: CardAggregates) -> dict[str, float]:
    """Card features that do not depend on the scored transaction's amount, merchant or place."""
    return dict(zip(CARD_HISTORY_FEATURES, _card_history_values(agg), strict=True))


def _card_history_values(agg: CardAggregates) -> list[float]:
    # unpacked once: attribute access per field costs more than the arithmetic
    (ts, _, _, _, _, c1h, s1h, x1h, c1d, s1d, x1d, c7d, s7d, x7d, c30d, s30d, x30d, _,
     dm1d, dm7d, dm30d, _, prev_ts, _, _, _, first_ts, fraud) = agg  # fmt: skip
    has_history = 0 <= first_ts < ts
    return [
        c1h, s1h / 100, s1h / c1h / 100 if c1h else 0.0, x1h / 100,
        c1d, s1d / 100, s1d / c1d / 100 if c1d else 0.0, x1d / 100,
        c7d, s7d / 100, s7d / c7d / 100 if c7d else 0.0, x7d / 100,
        c30d, s30d / 100, s30d / c30d / 100 if c30d else 0.0, x30d / 100,
        dm1d, dm7d, dm30d,
        (ts - prev_ts) / 1000 if prev_ts >= 0 else -1.0,
        (ts - first_ts) / 1000 if has_history else 0.0,
        1.0 if has_history else 0.0,
        fraud,
    ]  # fmt: skip


def card_features(agg: CardAggregates) -> dict[str, float]:
    """Every card feature of one scored transaction."""
    return dict(zip(CARD_FEATURES, _card_values(agg), strict=True))


def _card_values(agg: CardAggregates) -> list[float]:
    mean = agg.s30d / agg.c30d if agg.c30d else 0.0
    values = _card_history_values(agg)
    values += [
        agg.cents / mean if mean > 0 else 1.0,
        _zscore(int(agg.c30d), int(agg.s30d), agg.sq_30d, agg.cents),
        0.0 if agg.merchant_seen_30d else 1.0,
        *_geo_values(agg),
    ]
    return values


def _zscore(count: int, total: int, squares: float, cents: float) -> float:
    """(x - mean) / population std over the 30-day window, in exact integer arithmetic:
    (n·x - Σ) / sqrt(n·Σx² - Σ²). 0 with fewer than two amounts or no spread."""
    if count < 2:
        return 0.0
    spread = count * int(squares) - total * total
    return (count * int(cents) - total) / math.sqrt(spread) if spread > 0 else 0.0


def _geo_values(agg: CardAggregates) -> tuple[float, float, float]:
    """Located-before flag, km from the newest earlier located event, implied km/h."""
    if not agg.has_loc or agg.loc_ts < 0:
        return 0.0, 0.0, 0.0
    km = haversine_km(agg.loc_lat_u / 1e6, agg.loc_lon_u / 1e6, agg.lat_u / 1e6, agg.lon_u / 1e6)
    hours = max((agg.ts - agg.loc_ts) / HOUR_MS, MIN_SPEED_STEP_HOURS)
    return 1.0, km, km / hours


def merchant_features(agg: MerchantAggregates) -> dict[str, float]:
    """Every merchant feature of one scored transaction."""
    return dict(zip(MERCHANT_FEATURES, _merchant_values(agg), strict=True))


def _merchant_values(agg: MerchantAggregates) -> list[float]:
    windows = (
        (agg.c1d, agg.s1d, agg.f1d),
        (agg.c7d, agg.s7d, agg.f7d),
        (agg.c30d, agg.s30d, agg.f30d),
    )
    values: list[float] = []
    for count, total, _ in windows:
        values += [count, total / 100]
    for count, _, frauds in windows:
        values += [frauds, min(1.0, frauds / count) if count else 0.0]
    values += [agg.a1d, agg.a7d, agg.a30d]
    return values


def assemble(
    tx: Transaction, card: CardAggregates, merchant: MerchantAggregates
) -> dict[str, float]:
    """All features of one transaction, in :data:`FEATURE_NAMES` order."""
    values = _transaction_values(tx)
    values += _card_values(card)
    values += _merchant_values(merchant)
    return dict(zip(FEATURE_NAMES, values, strict=True))
