"""Core room: the review queue — analysts' verdicts on transactions decided ``review``.

An item is opened by the store in the statement that stores its scored record (see
``app.postgres.repository``). A verdict closes it once (a conditional update; a second verdict
is a :class:`AlreadyDecided` naming the first one's analyst and time). ``fraud`` and
``legitimate`` become a label with ``source="review"`` recorded in the same transaction through
the durable label intake (the ``labels`` table, status ``received``), which the leading learner
claims and learns exactly once, like a REST label; ``unsure`` closes with no label.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

from app.core.metrics import Metrics
from features.schema import Label

log = logging.getLogger(__name__)

Verdict = Literal["fraud", "legitimate", "unsure"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
Order = Literal["score", "age"]
MAX_NOTE = 1000


def label_for(
    transaction_id: str, verdict: Verdict, now: datetime, event_time: datetime
) -> Label | None:
    """The label a verdict teaches (None for unsure), known at max(now, the event time).

    A replayed or simulated stream can hold event times ahead of the wall clock; a label is
    never known before its transaction happened.
    """
    if verdict == "unsure":
        return None
    return Label(
        transaction_id=transaction_id,
        is_fraud=verdict == "fraud",
        labeled_at=max(now, event_time),
        source="review",
    )


@dataclass(frozen=True)
class ReviewFilter:
    order: Order = "score"
    min_amount: float | None = None
    max_amount: float | None = None
    reason: str | None = None
    opened_before: datetime | None = None  # items opened before this (older_than)
    limit: int = 50
    after: str | None = None  # an item's transaction id: only the items after it in the order


@dataclass(frozen=True)
class Closed:
    """A verdict recorded: the item as it is now, and the label's seq (None: unsure)."""

    item: dict[str, Any]
    label_seq: int | None


class AlreadyDecided(RuntimeError):
    """The item was closed before: its verdict, analyst and time (no input in the message)."""

    def __init__(self, verdict: str, analyst: str, decided_at: datetime) -> None:
        super().__init__(f"already decided: {verdict}")
        self.verdict, self.analyst, self.decided_at = verdict, analyst, decided_at


class ReviewStore(Protocol):
    async def open_items(self, query: ReviewFilter) -> list[dict[str, Any]]: ...

    async def item(self, transaction_id: str) -> dict[str, Any] | None:
        """One item, open or closed; None when the transaction was never in the queue."""
        ...

    async def close(
        self, transaction_id: str, verdict: Verdict, note: str | None, analyst: str, now: datetime
    ) -> Closed | None:
        """Close an open item (and record its label); None when not in the queue.

        Raises :class:`AlreadyDecided` for a closed one.
        """
        ...

    async def queue_stats(self) -> tuple[int, datetime | None]:
        """(open items, the oldest open item's opened_at)."""
        ...


class LabelNudge(Protocol):
    def claim_soon(self) -> None: ...


@dataclass
class ReviewDesk:
    """The review use-case: list, read and decide items; the queue gauges."""

    store: ReviewStore
    metrics: Metrics
    learner: LabelNudge | None = None

    async def decide(
        self, transaction_id: str, verdict: Verdict, note: str | None, analyst: str, now: datetime
    ) -> Closed | None:
        closed = await self.store.close(transaction_id, verdict, note, analyst, now)
        if closed is not None:
            self.metrics.review_verdicts.labels(verdict, analyst).inc()
            if closed.label_seq is not None and self.learner is not None:
                self.learner.claim_soon()  # a leading learner here settles it now, not at its sweep
        return closed

    async def observe_queue(self) -> None:
        count, oldest = await self.store.queue_stats()
        self.metrics.review_open.set(count)
        age = 0.0 if oldest is None else max(time.time() - oldest.timestamp(), 0.0)
        self.metrics.review_oldest.set(age)
