"""Ready column mappings for public fraud-data layouts (``riverguard history import --layout``).

A layout is a mapping plus how its timestamps and labels read; ``--map`` entries override it.

* ``handbook``: the *Fraud Detection Handbook*'s simulated transactions
  (``TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD``): naive
  ``YYYY-MM-DD HH:MM:SS`` datetimes read as UTC, the customer as the card, the terminal as the
  merchant, a fraud flag per row (its label time is the row's time plus ``--label-delay``).
* ``ieee-cis``: the IEEE-CIS (Vesta) competition layout (``TransactionID, TransactionDT,
  TransactionAmt, ProductCD, card1, isFraud``): ``TransactionDT`` is seconds from a reference
  start (``--start``, default 2017-12-01), ``card1`` is the card token, the product code stands
  in for the merchant (the data names no merchant).

>>> LAYOUTS["handbook"].mapping["card_id"], LAYOUTS["ieee-cis"].timestamps
('CUSTOMER_ID', 'offset')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TimestampFormat = Literal["iso", "epoch", "epoch_ms", "offset"]


@dataclass(frozen=True)
class Layout:
    """A named mapping of our fields to a file's columns, with its time conventions."""

    mapping: dict[str, str]
    timestamps: TimestampFormat = "iso"
    start: str | None = None  # origin of ``offset`` timestamps
    currency: str | None = None  # fixed currency when the data names none
    label_delay: str = "7d"
    notes: str = ""
    constants: dict[str, str] = field(default_factory=dict)


LAYOUTS: dict[str, Layout] = {
    "handbook": Layout(
        mapping={
            "transaction_id": "TRANSACTION_ID",
            "timestamp": "TX_DATETIME",
            "card_id": "CUSTOMER_ID",
            "merchant_id": "TERMINAL_ID",
            "amount": "TX_AMOUNT",
            "is_fraud": "TX_FRAUD",
        },
        timestamps="iso",
        currency="EUR",
        notes="naive datetimes are read in --timezone (UTC by default)",
    ),
    "ieee-cis": Layout(
        mapping={
            "transaction_id": "TransactionID",
            "timestamp": "TransactionDT",
            "card_id": "card1",
            "merchant_id": "ProductCD",
            "amount": "TransactionAmt",
            "is_fraud": "isFraud",
        },
        timestamps="offset",
        start="2017-12-01T00:00:00+00:00",
        currency="USD",
    ),
}
