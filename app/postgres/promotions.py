"""Postgres room: :class:`PgPromotionRequests`, promotions asked of any process (migration 010).

Any process records a request; the leading learner reads the pending ones in order and settles
each in one transaction under its epoch: the request's status and, when applied, the audit row
(``promotions.request_id`` is unique, so a request is audited at most once).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from app.core.ports import PromotionRequest
from app.postgres import codec
from app.postgres.leadership import check_epoch

_SETTLE = (
    "UPDATE promotion_requests SET status = $2, outcome = $3, settled_at = now(), epoch = $4"
    " WHERE id = $1 AND status = 'pending'"
)
_AUDIT = (
    "INSERT INTO promotions (from_model, to_model, reason, automatic, record, request_id)"
    " VALUES ($1, $2, $3, $4, $5::jsonb, $6)"
)


class PgPromotionRequests:
    """The durable queue of promotion requests and their settlement."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def request(self, to_model: str, reason: str, requested_by: str) -> int:
        request_id: int = await self.pool.fetchval(
            "INSERT INTO promotion_requests (to_model, reason, requested_by)"
            " VALUES ($1, $2, $3) RETURNING id",
            to_model,
            reason,
            requested_by,
        )
        return request_id

    async def pending(self, limit: int = 100) -> list[PromotionRequest]:
        rows = await self.pool.fetch(
            "SELECT id, to_model, reason, requested_by FROM promotion_requests"
            " WHERE status = 'pending' ORDER BY id LIMIT $1",
            limit,
        )
        return [
            PromotionRequest(r["id"], r["to_model"], r["reason"], r["requested_by"]) for r in rows
        ]

    async def settle(
        self, request_id: int, record: dict[str, Any] | None, outcome: str, epoch: int | None
    ) -> bool:
        """Settle a request: applied with its audit ``record``, or refused (``record`` None).

        False when it was settled before (nothing written).
        """
        async with self.pool.acquire() as conn, conn.transaction():
            if epoch is not None:
                await check_epoch(conn, epoch)
            status = "refused" if record is None else "applied"
            done = await conn.execute(_SETTLE, request_id, status, outcome, epoch)
            if done != "UPDATE 1":
                return False
            if record is not None:
                await conn.execute(
                    _AUDIT,
                    record["from_model"],
                    record["to_model"],
                    record["reason"],
                    bool(record.get("automatic", False)),
                    codec.dumps(record),
                    request_id,
                )
            return True

    async def outcome(self, request_id: int) -> tuple[str, str | None] | None:
        """(status, outcome) of a request, None if there is no such request."""
        row = await self.pool.fetchrow(
            "SELECT status, outcome FROM promotion_requests WHERE id = $1", request_id
        )
        return None if row is None else (row["status"], row["outcome"])
