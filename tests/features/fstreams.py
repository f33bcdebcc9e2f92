"""Builders shared by the feature-store tests (imported as a plain module)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from features.schema import Label, Transaction

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


def tx(
    tx_id: str,
    at: timedelta | datetime,
    amount: str | Decimal = "10",
    *,
    card: str = "c1",
    merchant: str = "m1",
    **extra: object,
) -> Transaction:
    """A transaction ``at`` after T0 (or at a datetime)."""
    moment = at if isinstance(at, datetime) else T0 + at
    return Transaction.model_validate(
        {
            "transaction_id": tx_id,
            "card_id": card,
            "merchant_id": merchant,
            "amount": Decimal(amount),
            "currency": "EUR",
            "timestamp": moment,
            **extra,
        }
    )


def label(
    transaction: Transaction,
    is_fraud: bool = True,
    *,
    after: timedelta = timedelta(days=1),
    at: datetime | None = None,
) -> tuple[Label, Transaction]:
    """A label known ``after`` the transaction (or ``at`` a given time), with its transaction."""
    known = at if at is not None else transaction.timestamp + after
    outcome = Label(transaction_id=transaction.transaction_id, is_fraud=is_fraud, labeled_at=known)
    return outcome, transaction


def decode_card_state(raw: bytes) -> tuple[list[tuple[int, int, int]], tuple[float, ...]]:
    """The card state of features/lua/card.lua as absolute records and header scalars
    (first-seen, newest located event and place) — independent of the offset base."""
    version, base, first, loc_ts, lat, lon = struct.unpack_from("<Bdddii", raw)
    assert version == 2
    records = [  # stored newest first, after a 109-byte header
        (int(base) + offset, cents, merchant)
        for offset, cents, merchant in struct.iter_unpack("<III", raw[109:])
    ][::-1]
    return records, (first, loc_ts, lat, lon)
