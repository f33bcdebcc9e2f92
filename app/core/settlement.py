"""Settlement rules: what a label is when it meets its transaction, and the records it makes.

A label is ``learned`` the first time its transaction's outcome is known, a ``duplicate`` when
it repeats the known outcome, ``relabeled`` when it flips it, and ``parked`` while its
transaction has not arrived. Pure functions: the learner (:mod:`app.core.learning`) applies
them and writes what they return.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from app.core.ports import LabelEntry, LearnRow
from features.schema import Label, Transaction

#: A label's status as answered: settled by the leading learner of this process, or
#: ``accepted`` — durable, to be settled by the learner that leads (another process).
LabelStatus = Literal["learned", "duplicate", "parked", "relabeled", "accepted"]


def status_of(label: Label, row: LearnRow | None, current: dict[str, bool | None]) -> LabelStatus:
    if row is None:
        return "parked"
    known = current.get(label.transaction_id)
    if known is None:
        return "learned"
    return "duplicate" if known == label.is_fraud else "relabeled"


def entry_of(label: Label, status: LabelStatus) -> LabelEntry:
    return LabelEntry(
        transaction_id=label.transaction_id,
        is_fraud=label.is_fraud,
        labeled_at=label.labeled_at,
        source=label.source,
        status=status,
        learn=status in ("learned", "relabeled"),
        evaluate=status == "learned",
    )


def label_of(entry: LabelEntry) -> Label:
    return Label(
        transaction_id=entry.transaction_id,
        is_fraud=entry.is_fraud,
        labeled_at=entry.labeled_at,
        source=entry.source,
    )


def transaction_of(row: LearnRow) -> Transaction:
    """Rebuild the wire record from its stored canonical payload."""
    return transaction_from_payload(row.payload)


def transaction_from_payload(payload: dict[str, Any]) -> Transaction:
    data = dict(payload)
    data["amount"] = Decimal(str(data["amount"]))
    return Transaction.model_validate(data)
