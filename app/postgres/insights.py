"""Postgres room: :class:`PgInsights`, the read-only views of :mod:`app.core.insights`.

Each method is one statement on an index of migration 009 (card history, rule hits) or on
the BRIN index of ``scored_at`` (decisions since a moment).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import asyncpg

from app.core.insights import CardTransaction
from app.postgres import codec

_CARD = """
SELECT t.transaction_id, t.event_time, t.merchant_id, t.score, t.decision,
    coalesce(t.payload_rest, t.payload) AS rest, i.label_is_fraud
FROM scored_transactions t
JOIN transaction_ids i ON i.transaction_id = t.transaction_id AND i.event_time = t.event_time
WHERE t.card_id = $1 AND t.event_time <= $2
ORDER BY t.event_time DESC, t.transaction_id DESC
LIMIT $3
"""
_RULE_HITS = """
SELECT substr(decided, 6) AS rule_id, (event_time AT TIME ZONE 'UTC')::date AS day,
    count(*) AS hits
FROM scored_transactions
WHERE decided IS NOT NULL AND decided LIKE 'rule:%' AND event_time >= $1
GROUP BY 1, 2
"""
_DECISIONS = """
SELECT decision, count(*) AS n FROM scored_transactions WHERE scored_at >= $1 GROUP BY decision
"""


class PgInsights:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def card_history(
        self, card_id: str, before: datetime, limit: int
    ) -> list[CardTransaction]:
        rows = await self.pool.fetch(_CARD, card_id, before, limit)
        out = []
        for row in rows:
            # payload_rest holds amount and currency (the id, card, merchant, time are columns)
            rest = codec.rest_fields(row["rest"], parse_float=str)
            out.append(
                CardTransaction(
                    transaction_id=row["transaction_id"],
                    event_time=row["event_time"],
                    merchant_id=row["merchant_id"],
                    amount=None if rest.get("amount") is None else str(rest["amount"]),
                    currency=rest.get("currency"),
                    score=row["score"],
                    decision=row["decision"],
                    label=row["label_is_fraud"],
                )
            )
        return out

    async def rule_hits(self, since: datetime) -> dict[str, dict[str, int]]:
        hits: dict[str, dict[str, int]] = defaultdict(dict)
        for row in await self.pool.fetch(_RULE_HITS, since):
            hits[row["rule_id"]][row["day"].isoformat()] = int(row["hits"])
        return dict(hits)

    async def decisions_since(self, since: datetime) -> dict[str, int]:
        rows = await self.pool.fetch(_DECISIONS, since)
        return {row["decision"]: int(row["n"]) for row in rows}
