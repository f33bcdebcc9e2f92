"""Postgres room: the decision outbox and webhook deliveries (migration 018).

The relay's pass is one transaction: a try-advisory lock (one relay at a time), the oldest rows
joined to their records, the caller's publish awaited, then the rows deleted and the webhook
deliveries queued. A row whose record is gone (a partition dropped by retention before the
relay ran) is deleted unpublished: there is no decision left to describe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.core import outbox
from app.core.outbox import Delivery, Event, Publish

_RELAY_LOCK = 0x4F5554424F58  # "OUTBOX"
_CLAIM = """
SELECT o.seq, o.kind, o.transaction_id, t.card_id, t.merchant_id, t.decision, t.score,
    t.decided, t.event_time, t.scored_at, q.verdict, q.analyst, q.decided_at
FROM decision_outbox o
LEFT JOIN scored_transactions t ON t.event_time = o.event_time
    AND t.transaction_id = o.transaction_id
LEFT JOIN review_queue q ON o.kind = 'verdict' AND q.transaction_id = o.transaction_id
ORDER BY o.seq LIMIT $1
"""


def _event(row: Any) -> Event | None:
    if row["card_id"] is None:
        return None
    common = {
        "transaction_id": row["transaction_id"],
        "card_id": row["card_id"],
        "event_time": row["event_time"],
    }
    if row["kind"] == "verdict":
        fields = {
            **common,
            "verdict": row["verdict"],
            "analyst": row["analyst"],
            "decided_at": row["decided_at"],
        }
        return Event(row["seq"], row["card_id"], outbox.event_body("verdict", fields))
    fields = {
        **common,
        "merchant_id": row["merchant_id"],
        "decision": row["decision"],
        "score": row["score"],
        "decided_by": row["decided"] or "model",
        "scored_at": row["scored_at"],
    }
    return Event(row["seq"], row["card_id"], outbox.event_body("decision", fields))


class PgOutbox:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def relay(self, limit: int, publish: Publish, endpoints: Sequence[str]) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RELAY_LOCK):
                return 0
            rows = await conn.fetch(_CLAIM, limit)
            if not rows:
                return 0
            events = [e for e in map(_event, rows) if e is not None]
            if events:
                await publish(events)
            for name in endpoints:
                await conn.execute(
                    "INSERT INTO webhook_deliveries (endpoint, card_id, body)"
                    " SELECT $1, c, b FROM unnest($2::text[], $3::bytea[]) AS u(c, b)",
                    name,
                    [e.card_id for e in events],
                    [e.body for e in events],
                )
            await conn.execute(
                "DELETE FROM decision_outbox WHERE seq = ANY($1::bigint[])",
                [r["seq"] for r in rows],
            )
            return len(rows)

    async def claim_deliveries(
        self, endpoint: str, limit: int, now: datetime, hold: timedelta
    ) -> list[Delivery]:
        rows = await self.pool.fetch(
            "UPDATE webhook_deliveries SET next_at = $3 WHERE id IN ("
            " SELECT id FROM webhook_deliveries WHERE endpoint = $1 AND next_at <= $2"
            " ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " RETURNING id, card_id, body, attempts",
            endpoint,
            now,
            now + hold,
            limit,
        )
        deliveries = [Delivery(r["id"], r["card_id"], r["body"], r["attempts"]) for r in rows]
        return sorted(deliveries, key=lambda d: d.id)

    async def delivered(self, ids: Sequence[int]) -> None:
        await self.pool.execute(
            "DELETE FROM webhook_deliveries WHERE id = ANY($1::bigint[])", list(ids)
        )

    async def retry(self, delivery_id: int, error: str, at: datetime) -> None:
        await self.pool.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, next_at = $2,"
            " last_error = $3 WHERE id = $1",
            delivery_id,
            at,
            error,
        )

    async def dead_letter(self, delivery_id: int, error: str) -> None:
        await self.pool.execute(
            "WITH gone AS (DELETE FROM webhook_deliveries WHERE id = $1"
            " RETURNING id, endpoint, card_id, body, attempts)"
            " INSERT INTO webhook_dead_letters (id, endpoint, card_id, body, attempts, last_error)"
            " SELECT id, endpoint, card_id, body, attempts + 1, $2 FROM gone"
            " ON CONFLICT (id) DO NOTHING",
            delivery_id,
            error,
        )

    async def pending(self) -> int:
        """Rows not yet relayed (for tests and the operator)."""
        return int(await self.pool.fetchval("SELECT count(*) FROM decision_outbox"))
