"""Core room: read-only views of the stored record for people (the analysts' console).

The port :class:`Insights` answers what the console shows beside the queue, each with one
indexed query (migration 009): a card's recent stored transactions, the transactions each
rule decided per day, and the decisions stored since a moment. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class CardTransaction:
    """One stored transaction of a card, as the card's history shows it."""

    transaction_id: str
    event_time: datetime
    merchant_id: str
    amount: str | None
    currency: str | None
    score: float
    decision: str
    label: bool | None


class Insights(Protocol):
    async def card_history(
        self, card_id: str, before: datetime, limit: int
    ) -> list[CardTransaction]:
        """The card's stored transactions with event time at or before ``before``, newest
        first, at most ``limit``."""
        ...

    async def rule_hits(self, since: datetime) -> dict[str, dict[str, int]]:
        """Per rule id, per UTC day (ISO date) of event time: the stored transactions the
        rule decided (``decided = 'rule:<id>'``) with event time at or after ``since``."""
        ...

    async def decisions_since(self, since: datetime) -> dict[str, int]:
        """Stored transactions per decision, scored at or after ``since`` (every process)."""
        ...
