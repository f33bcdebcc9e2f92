"""The brute-force reference: the semantics of every feature, in plain Python.

Feed it a stream in arrival order; each transaction's features are computed by scanning the
card's kept records and the merchant's buckets, then the transaction is added — exactly what
the Lua scripts do atomically in Redis, with the same lateness, retention, cap and bucket
rules (features/README.md). It is pure (no I/O) and replays ~100k events in ~10 s, so the
offline evaluation can compute the features the online service would have computed.

>>> from features.schema import Label, Transaction
>>> ref = ReferenceFeatures(FeatureConfig())
>>> def tx(i, amount, minute):
...     return Transaction(transaction_id=f"t{i}", card_id="c1", merchant_id="m1",
...                        amount=amount, currency="EUR",
...                        timestamp=f"2026-01-05T10:{minute:02d}:00Z")
>>> ref.transaction(tx(1, 10, 0)).features["card_count_1h"]
0.0
>>> second = ref.transaction(tx(2, 30, 30)).features
>>> second["card_count_1h"], second["card_mean_1h"], second["card_seconds_since_prev"]
(1.0, 10.0, 1800.0)
>>> ref.transaction(tx(2, 30, 30)).status
'duplicate'
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from features import definitions, windows
from features.config import (
    CONFLICT,
    DAY_MS,
    HOUR_MS,
    FeatureConfig,
    FeatureResult,
    Status,
    late_reason,
)
from features.schema import Label, Transaction
from features.windows import CardAggregates, EncodedTx, MerchantAggregates

_CARD_WINDOWS_MS = (HOUR_MS, DAY_MS, 7 * DAY_MS, 30 * DAY_MS)
_Marker = tuple[bytes, bytes]  # payload digest, packed aggregate vector (as Redis stores)
_Record = tuple[int, int, int]  # event ms, cents, merchant digest


@dataclass
class _Card:
    records: list[_Record] = field(default_factory=list)
    first: int = -1
    loc: tuple[int, int, int] | None = None  # newest located event: ms, lat, lon (micro-deg)
    frauds: dict[str, int] = field(default_factory=dict)
    seen: dict[str, _Marker] = field(default_factory=dict)


@dataclass
class _Merchant:
    newest: int | None = None
    hours: dict[int, list[int]] = field(default_factory=dict)  # hour -> [count, cents]
    days: dict[int, list[int]] = field(default_factory=dict)
    # fraud-labelled id -> (its transaction's event ms, the label's arrival ms)
    frauds: dict[str, tuple[int, int]] = field(default_factory=dict)
    seen: dict[str, _Marker] = field(default_factory=dict)


def _bands(newest_first: Sequence[_Record], t: int) -> list[tuple[int, int, int, float, int]]:
    """Per band (1h, 1h-1d, 1d-7d, 7d-30d before t): count, cents, max, squares, new merchants.

    A merchant counts in the first (most recent) band it appears in; squares accumulate as
    doubles newest first, like the card script.
    """
    visited: set[int] = set()
    bands = []
    i = 0
    for width in _CARD_WINDOWS_MS:
        count = total = top = new = 0
        squares = 0.0
        while i < len(newest_first) and newest_first[i][0] >= t - width:
            _, cents, merchant = newest_first[i]
            count, total, top = count + 1, total + cents, max(top, cents)
            squares += float(cents) * float(cents)
            if merchant not in visited:
                visited.add(merchant)
                new += 1
            i += 1
        bands.append((count, total, top, squares, new))
    return bands


def card_aggregates(card: _Card, e: EncodedTx) -> CardAggregates:
    """What the card script reads for an event at ``e.ts``: windows ``[t - W, t)``."""
    t = e.ts
    lo = bisect.bisect_left(card.records, (t - 30 * DAY_MS,))
    hi = bisect.bisect_left(card.records, (t,))
    window = card.records[lo:hi]
    cumulative: list[float] = []
    count = total = top = merchants = 0
    distinct = []
    bands = _bands(window[::-1], t)
    for band_count, band_total, band_top, _, band_new in bands:
        count, total, top = count + band_count, total + band_total, max(top, band_top)
        merchants += band_new
        cumulative += [count, total, top]
        distinct.append(merchants)
    squares = 0.0
    for band in bands:  # added in the script's order, so the doubles round the same way
        squares += band[3]
    loc = card.loc if card.loc is not None and card.loc[0] < t else (-1, 0, 0)
    fraud = any(t - 30 * DAY_MS <= ft < t for ft in card.frauds.values())
    return CardAggregates._make([
        t, e.cents, float(e.lat_u is not None), e.lat_u or 0, e.lon_u or 0,
        *cumulative, squares, *distinct[1:],
        float(any(m == e.merchant for _, _, m in window)),
        card.records[hi - 1][0] if hi > 0 else -1,
        *loc, card.first, float(fraud),
    ])  # fmt: skip


def _add_to_card(card: _Card, e: EncodedTx, config: FeatureConfig) -> None:
    newest = card.records[-1][0] if card.records else -1
    bisect.insort(card.records, (e.ts, e.cents, e.merchant))
    lower = max(newest, e.ts) - config.card_retention_ms
    # fraud labels behind the horizon go too (no accepted event can see them any more)
    card.frauds = {tx_id: ts for tx_id, ts in card.frauds.items() if ts >= lower}
    drop = 0
    while card.records[drop][0] < lower:
        drop += 1
    drop = max(drop, len(card.records) - config.card_max_entries)
    del card.records[:drop]
    card.first = e.ts if card.first < 0 else min(card.first, e.ts)
    if e.lat_u is not None and e.lon_u is not None:
        here = (e.ts, e.lat_u, e.lon_u)
        card.loc = here if card.loc is None else max(card.loc, here)


def merchant_aggregates(
    merchant: _Merchant, e: EncodedTx, config: FeatureConfig
) -> MerchantAggregates:
    """What the merchant script reads for an event at ``e.ts`` (buckets before its hour)."""
    r = windows.merchant_ranges(
        e.ts, merchant.newest, config.merchant_keep_hours, config.merchant_keep_days
    )

    def total(buckets: dict[int, list[int]], lo: int, hi: int) -> tuple[int, int]:
        found = [buckets[i] for i in range(lo, hi) if i in buckets]
        return sum(b[0] for b in found), sum(b[1] for b in found)

    def frauds(which: int) -> tuple[int, int, int]:
        """Labels whose time (0: the transaction's, 1: the label's arrival) is in 1d/7d/30d."""

        def count(lo: int, hi: int) -> int:
            return sum(1 for times in merchant.frauds.values() if lo <= times[which] < hi)

        today = count(r.today_lo * HOUR_MS, r.hour_hi * HOUR_MS)
        return (
            count(r.hour_lo * HOUR_MS, r.hour_hi * HOUR_MS),
            count(r.day7_lo * DAY_MS, r.day_hi * DAY_MS) + today,
            count(r.day_lo * DAY_MS, r.day_hi * DAY_MS) + today,
        )

    c1d, s1d = total(merchant.hours, r.hour_lo, r.hour_hi)
    ct, st = total(merchant.hours, r.today_lo, r.hour_hi)
    c7d, s7d = total(merchant.days, r.day7_lo, r.day_hi)
    c30d, s30d = total(merchant.days, r.day_lo, r.day_hi)
    return MerchantAggregates(
        e.ts, c1d, s1d, c7d + ct, s7d + st, c30d + ct, s30d + st, *frauds(0), *frauds(1)
    )  # fmt: skip


def _add_to_merchant(merchant: _Merchant, e: EncodedTx, config: FeatureConfig) -> None:
    newest = e.ts if merchant.newest is None else max(merchant.newest, e.ts)
    oldest_hour, oldest_day = windows.merchant_horizons(
        newest, config.merchant_keep_hours, config.merchant_keep_days
    )
    if merchant.newest is None or newest // DAY_MS > merchant.newest // DAY_MS:
        _prune(merchant, oldest_hour, oldest_day)
    merchant.newest = newest
    for buckets, index, oldest in (
        (merchant.hours, e.ts // HOUR_MS, oldest_hour),
        (merchant.days, e.ts // DAY_MS, oldest_day),
    ):
        if index >= oldest:
            bucket = buckets.setdefault(index, [0, 0])
            bucket[0] += 1
            bucket[1] += e.cents


def _prune(merchant: _Merchant, oldest_hour: int, oldest_day: int) -> None:
    """Forget what is behind the horizon (never read again), as the script does each day."""
    merchant.hours = {h: b for h, b in merchant.hours.items() if h >= oldest_hour}
    merchant.days = {d: b for d, b in merchant.days.items() if d >= oldest_day}
    # an id goes once its label arrived behind the horizon (arrival >= its transaction's time)
    merchant.frauds = {
        i: times for i, times in merchant.frauds.items() if times[1] >= oldest_day * DAY_MS
    }


def _floats(values: Iterable[float]) -> list[float]:
    """The vector as the scripts return it: every number a double."""
    return [float(v) for v in values]


class ReferenceFeatures:
    """Brute-force features of a stream processed in arrival order.

    Parameters
    ----------
    config
        The same :class:`FeatureConfig` the Redis store uses (prefix and TTL are ignored:
        dedup markers never expire here).

    >>> ReferenceFeatures(FeatureConfig()).card_features("nobody")["card_has_history"]
    0.0
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self._cards: dict[str, _Card] = {}
        self._merchants: dict[str, _Merchant] = {}

    def transaction(self, tx: Transaction) -> FeatureResult:
        """Features of ``tx`` from what was seen before; then ``tx`` is added (once)."""
        e = windows.encode(tx)
        card = self._cards.setdefault(tx.card_id, _Card())
        duplicate = tx.transaction_id in card.seen
        if not duplicate:
            newest = card.records[-1][0] if card.records else None
            if newest is not None and e.ts < newest - self.config.lateness_ms:
                reason = late_reason(e.ts, newest, self.config.lateness_ms)
                return FeatureResult(tx.transaction_id, "late", {}, reason)
            vector = windows.CARD_VECTOR.pack(*card_aggregates(card, e))
            card.seen[tx.transaction_id] = (e.digest, vector)
            _add_to_card(card, e, self.config)
        merchant_marker = self._merchant_step(tx, e)
        return self._result(
            tx, e, card.seen[tx.transaction_id], merchant_marker, duplicate=duplicate
        )

    def _merchant_step(self, tx: Transaction, e: EncodedTx) -> _Marker:
        merchant = self._merchants.setdefault(tx.merchant_id, _Merchant())
        if tx.transaction_id not in merchant.seen:
            vector = windows.MERCHANT_VECTOR.pack(*merchant_aggregates(merchant, e, self.config))
            merchant.seen[tx.transaction_id] = (e.digest, vector)
            _add_to_merchant(merchant, e, self.config)
        return merchant.seen[tx.transaction_id]

    def _result(
        self, tx: Transaction, e: EncodedTx, card: _Marker, merchant: _Marker, *, duplicate: bool
    ) -> FeatureResult:
        features = definitions.assemble(
            tx,
            CardAggregates._make(windows.CARD_VECTOR.unpack(card[1])),
            MerchantAggregates._make(windows.MERCHANT_VECTOR.unpack(merchant[1])),
        )
        clash = card[0] != e.digest or merchant[0] != e.digest
        status: Status = "duplicate" if duplicate else "fresh"
        return FeatureResult(tx.transaction_id, status, features, CONFLICT if clash else None)

    def label(self, label: Label, tx: Transaction) -> None:
        """A fraud outcome for ``tx``: idempotent; a flipped label moves the counts back.

        The merchant counts it both at ``tx``'s event time and at the label's arrival
        (``labeled_at``, see :func:`windows.label_arrival_ms`); the first times recorded for a
        fraud-labelled id stay until a legitimate label removes it (ZADD NX / ZREM).
        """
        ts = windows.event_ms(tx.timestamp)
        card = self._cards.setdefault(tx.card_id, _Card())
        merchant = self._merchants.setdefault(tx.merchant_id, _Merchant())
        if label.is_fraud:
            card.frauds.setdefault(tx.transaction_id, ts)
            arrival = windows.label_arrival_ms(label.labeled_at, ts)
            merchant.frauds.setdefault(tx.transaction_id, (ts, arrival))
        else:
            card.frauds.pop(tx.transaction_id, None)
            merchant.frauds.pop(tx.transaction_id, None)

    def card_features(self, card_id: str, at: datetime | None = None) -> dict[str, float]:
        """History features a transaction of this card at ``at`` would get (no update)."""
        card = self._cards.get(card_id, _Card())
        moment = windows.event_ms(at or datetime.now(UTC))
        probe = EncodedTx("", moment, 0, 0, None, None, b"")
        aggregates = CardAggregates._make(_floats(card_aggregates(card, probe)))
        return definitions.card_history_features(aggregates)


class MemoryFeatureStore:
    """The ``FeatureStore`` protocol on :class:`ReferenceFeatures`: a fake for tests of code
    that uses a feature store, and a store for offline replays. Not safe across processes.

    >>> import asyncio
    >>> asyncio.run(MemoryFeatureStore().card_features("c1", None))["card_count_30d"]
    0.0
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.reference = ReferenceFeatures(config)

    @property
    def config(self) -> FeatureConfig:
        return self.reference.config

    async def load_scripts(self) -> None:
        return None

    async def score_batch(
        self, txs: Sequence[Transaction], *, markers: bool = True
    ) -> list[FeatureResult]:
        return [self.reference.transaction(tx) for tx in txs]

    async def apply_labels(self, items: Sequence[tuple[Label, Transaction]]) -> None:
        for label, tx in items:
            self.reference.label(label, tx)

    async def card_features(self, card_id: str, at: datetime | None) -> dict[str, float]:
        return self.reference.card_features(card_id, at)
