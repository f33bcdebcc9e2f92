"""Pure window arithmetic: how event times, amounts and places are encoded and bucketed.

Both the Lua scripts and :mod:`features.reference` follow these definitions; the raw
aggregates they produce (:class:`CardAggregates`, :class:`MerchantAggregates`) are turned
into named features by :mod:`features.definitions`.

>>> from datetime import UTC, datetime
>>> event_ms(datetime(2026, 1, 5, 10, 0, 0, 999_999, tzinfo=UTC)) % 1000
999
>>> to_cents(Decimal("12.345")), to_cents(Decimal("12.355"))
(1234, 1236)
>>> r = merchant_ranges(event=10 * DAY_MS + 5 * HOUR_MS + 1, newest=None, keep_hours=193,
...                     keep_days=39)
>>> (r.hour_lo, r.hour_hi, r.today_lo, r.day_lo, r.day7_lo, r.day_hi)
(221, 245, 240, -20, 3, 10)
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import NamedTuple

from features.config import DAY_MS, HOUR_MS
from features.schema import Transaction

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_CENT = Decimal("0.01")
EARTH_RADIUS_KM = 6371.0088
#: Implied speeds use at least this time step, so two nearby events give no infinity.
MIN_SPEED_STEP_HOURS = 1 / 60


def event_ms(moment: datetime) -> int:
    """Event time as whole milliseconds since the Unix epoch (floored)."""
    return (moment - EPOCH) // _ONE_MS


def to_cents(amount: Decimal) -> int:
    """Amounts are aggregated as integer hundredths (half-even), so sums are exact."""
    return int(amount.quantize(_CENT, rounding=ROUND_HALF_EVEN) * 100)


@functools.lru_cache(maxsize=65536)
def merchant_digest(merchant_id: str) -> int:
    """A 32-bit digest of a merchant id: what a card remembers about where it was used."""
    raw = hashlib.blake2b(merchant_id.encode(), digest_size=4).digest()
    return int.from_bytes(raw, "little")


def micro_degrees(value: float) -> int:
    """Latitude/longitude as integer millionths of a degree (about 11 cm)."""
    return round(value * 1_000_000)


class EncodedTx(NamedTuple):
    """A transaction as the card and merchant steps see it."""

    transaction_id: str
    ts: int
    cents: int
    merchant: int
    lat_u: int | None
    lon_u: int | None
    digest: bytes


def payload_digest(tx: Transaction) -> bytes:
    """An 8-byte digest of the fields that shape features (to spot a reused transaction id)."""
    parts = (
        tx.card_id,
        tx.merchant_id,
        str(tx.amount),
        tx.timestamp.isoformat(),
        str(tx.channel),
        str(tx.merchant_category),
        str(tx.lat),
        str(tx.lon),
    )
    return hashlib.blake2b("|".join(parts).encode(), digest_size=8).digest()


def encode(tx: Transaction) -> EncodedTx:
    """Event time, cents, merchant digest and place of a transaction (located = both given)."""
    located = tx.lat is not None and tx.lon is not None
    return EncodedTx(
        transaction_id=tx.transaction_id,
        ts=event_ms(tx.timestamp),
        cents=to_cents(tx.amount),
        merchant=merchant_digest(tx.merchant_id),
        lat_u=micro_degrees(tx.lat) if located and tx.lat is not None else None,
        lon_u=micro_degrees(tx.lon) if located and tx.lon is not None else None,
        digest=payload_digest(tx),
    )


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, a)))


#: Binary layouts of the aggregate vectors (the scripts' answers and dedup markers).
CARD_VECTOR = struct.Struct("<28d")
MERCHANT_VECTOR = struct.Struct("<13d")


class MerchantRanges(NamedTuple):
    """Bucket index ranges (hours and days since the epoch) read for one merchant event.

    Every range is half-open ``[lo, hi)``. Windows end at the start of the event's UTC hour:
    ``1d`` = hours ``[hour_lo, hour_hi)``; ``7d`` = days ``[day7_lo, day_hi)`` plus the whole
    hours of the current day ``[today_lo, hour_hi)``; ``30d`` = days ``[day_lo, day_hi)`` plus
    the same hours. Lower bounds are clipped to the merchant's retention horizon.
    """

    hour_lo: int
    hour_hi: int
    today_lo: int
    day_lo: int
    day7_lo: int
    day_hi: int


def label_arrival_ms(labeled_at: datetime, event: int) -> int:
    """When a fraud label counts as arrived, in ms: its ``labeled_at``, but never before the
    labelled transaction's own event time ``event`` (an outcome cannot be known earlier; an
    earlier stamp is clock skew between systems).

    >>> label_arrival_ms(datetime(1970, 1, 2, tzinfo=UTC), 0), label_arrival_ms(EPOCH, 5)
    (86400000, 5)
    """
    return max(event_ms(labeled_at), event)


def merchant_horizons(newest: int | None, keep_hours: int, keep_days: int) -> tuple[int, int]:
    """Oldest hour and day bucket a merchant keeps, given its newest event time."""
    if newest is None:
        return -(2**62), -(2**62)
    return newest // HOUR_MS - keep_hours, newest // DAY_MS - keep_days


def merchant_ranges(
    event: int, newest: int | None, keep_hours: int, keep_days: int
) -> MerchantRanges:
    """The buckets a merchant event at ``event`` ms reads, before it is added."""
    hour, day = event // HOUR_MS, event // DAY_MS
    oldest_hour, oldest_day = merchant_horizons(newest, keep_hours, keep_days)
    return MerchantRanges(
        hour_lo=max(hour - 24, oldest_hour),
        hour_hi=hour,
        today_lo=max(day * 24, oldest_hour),
        day_lo=max(day - 30, oldest_day),
        day7_lo=max(day - 7, oldest_day),
        day_hi=day,
    )


class CardAggregates(NamedTuple):
    """Raw per-card aggregates of one event, as the card script returns them.

    Amounts in cents, times in ms since the epoch, places in micro-degrees; -1 marks an
    absent time. Windows are ``[t - W, t)`` over the card's kept records. ``sq_30d`` is the
    sum of squared cents, accumulated as doubles newest first, one partial sum per window
    band (1h, 1h-1d, 1d-7d, 7d-30d) added in that order: exact below 2**53.
    """

    ts: float
    cents: float
    has_loc: float
    lat_u: float
    lon_u: float
    c1h: float
    s1h: float
    x1h: float
    c1d: float
    s1d: float
    x1d: float
    c7d: float
    s7d: float
    x7d: float
    c30d: float
    s30d: float
    x30d: float
    sq_30d: float
    dm1d: float
    dm7d: float
    dm30d: float
    merchant_seen_30d: float
    prev_ts: float
    loc_ts: float
    loc_lat_u: float
    loc_lon_u: float
    first_ts: float
    fraud_30d: float


class MerchantAggregates(NamedTuple):
    """Raw per-merchant aggregates of one event (windows of :class:`MerchantRanges`).

    ``c``/``s``: transactions and cents by their event time; ``f``: those of them labelled
    fraud; ``a``: fraud labels by their arrival (:func:`label_arrival_ms`), whatever the
    labelled transaction's time. All labels are those received before this event was scored.
    """

    ts: float
    c1d: float
    s1d: float
    c7d: float
    s7d: float
    c30d: float
    s30d: float
    f1d: float
    f7d: float
    f30d: float
    a1d: float
    a7d: float
    a30d: float
