"""Settling parked labels once their transaction has arrived (the learner's adoption rules).

A label that arrived before its transaction was parked. When the transaction is stored, the
parked labels of it are settled against the label the transaction may have received since
(claimed in the meantime) — by order, then value:

- labels are ordered by ``labeled_at`` (when the outcome became known), then by arrival;
- of the parked labels of one transaction the last in that order is the candidate; the others
  are ``superseded`` (never learned);
- no current label: the candidate is ``learned``;
- the same value as the current label: ``duplicate`` (a label is learned once);
- another value, later than the current label: ``relabeled`` (the flip policy: learned, not
  evaluated); earlier than it: ``superseded`` — an earlier label never overrides a later one.

A transaction whose record cannot be read (its day partition detached for archiving, or being
pruned) keeps its parked labels: they are adopted if the partition comes back, and expire or
go with the prune otherwise.

>>> from datetime import UTC, datetime
>>> at = datetime(2026, 1, 5, tzinfo=UTC)
>>> def parked(seq, fraud, day, current=None):
...     return ParkedLabel(seq, "t1", fraud, at.replace(day=day), "chargeback",
...                        *(current or (None, None, None)))
>>> plan = settle([parked(1, True, 5, (True, at.replace(day=6), 2))], {"t1"})
>>> [e.status for _, e in plan.adopted]  # same value: learned once already
['duplicate']
>>> plan = settle([parked(1, True, 5, (False, at.replace(day=6), 2))], {"t1"})
>>> [e.status for _, e in plan.adopted]  # earlier than the current label: does not override
['superseded']
>>> plan = settle([parked(1, True, 7, (False, at.replace(day=6), 2))], {"t1"})
>>> [(e.status, e.learn, e.evaluate) for _, e in plan.adopted]  # later: a recorded flip
[('relabeled', True, False)]
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from app.core.ports import LabelEntry, ParkedLabel


@dataclass
class Adoption:
    """What to write for a batch of parked labels whose transaction has arrived."""

    adopted: list[tuple[int, LabelEntry]] = field(default_factory=list)  # one per transaction
    superseded: list[int] = field(default_factory=list)  # label seqs, never learned
    unreadable: list[int] = field(default_factory=list)  # label seqs that stay parked


def _order(labeled_at: datetime, seq: int) -> tuple[datetime, int]:
    return labeled_at, seq


def settle(parked: Sequence[ParkedLabel], readable: Collection[str]) -> Adoption:
    """The adoption of ``parked`` (of transactions that arrived); ``readable``: the ids whose
    stored record was read (the others stay parked)."""
    plan = Adoption()
    newest: dict[str, ParkedLabel] = {}
    for row in parked:
        if row.transaction_id not in readable:
            plan.unreadable.append(row.seq)
            continue
        best = newest.get(row.transaction_id)
        if best is None or _order(row.labeled_at, row.seq) > _order(best.labeled_at, best.seq):
            if best is not None:
                plan.superseded.append(best.seq)
            newest[row.transaction_id] = row
        else:
            plan.superseded.append(row.seq)
    for row in newest.values():
        status = _status(row)
        learn = status in ("learned", "relabeled")
        entry = LabelEntry(
            transaction_id=row.transaction_id, is_fraud=row.is_fraud, labeled_at=row.labeled_at,
            source=row.source, status=status, learn=learn, evaluate=status == "learned",
        )  # fmt: skip
        plan.adopted.append((row.seq, entry))
    return plan


def _status(row: ParkedLabel) -> str:
    if row.current_is_fraud is None:
        return "learned"
    if row.current_is_fraud == row.is_fraud:
        return "duplicate"
    if row.current_labeled_at is None or row.current_seq is None:
        return "superseded"  # no order is known for the current label: it stays
    later = _order(row.labeled_at, row.seq) > _order(row.current_labeled_at, row.current_seq)
    return "relabeled" if later else "superseded"
