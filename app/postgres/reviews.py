"""Postgres room: :class:`PgReviewStore`, the review queue (migration 007).

Items are opened by :data:`app.postgres.scored._INSERT_SCORED` with their record. An item
read here is its queue row plus the stored record, rebuilt by the repository (features as
stored at scoring time, every model's score). A verdict is one transaction: the conditional
close and, for fraud / legitimate, the label through the same intake as REST labels.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from app.core.reviews import AlreadyDecided, Closed, ReviewFilter, Verdict, label_for
from app.postgres.labels import insert_received
from app.postgres.scored import _RECORD, PgScored

_ITEM = (
    "SELECT q.opened_at, q.verdict, q.note, q.analyst, q.decided_at,"  # noqa: S608 (constants)
    f" {_RECORD} FROM review_queue q JOIN scored_transactions t"
    " ON t.event_time = q.event_time AND t.transaction_id = q.transaction_id"
)
_ORDER = {"score": "q.score DESC, q.transaction_id", "age": "q.opened_at, q.transaction_id"}
# the payload's fields an analyst sees (never the whole payload: only what is named here)
_SHOWN = ("card_id", "merchant_id", "amount", "currency", "country", "channel",
          "merchant_category", "device_id")  # fmt: skip


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


class PgReviewStore:
    def __init__(self, pool: asyncpg.Pool, records: PgScored) -> None:
        self.pool = pool
        self.records = records

    async def _item(self, row: Any) -> dict[str, Any]:
        decoded = await self.records.decode_row(row)
        payload = json.loads(decoded["payload"])
        answer = json.loads(decoded["response"])
        return {
            "transaction_id": row["transaction_id"],
            "event_time": _iso(row["event_time"]),
            **{name: payload.get(name) for name in _SHOWN},
            "score": row["score"],
            "decision": row["decision"],
            "reasons": answer.get("reasons") or [],
            "features": decoded["features"],
            "scores": [
                {k: s[k] for k in ("name", "version", "role", "score")} for s in decoded["scores"]
            ],
            "opened_at": _iso(row["opened_at"]),
            "verdict": row["verdict"],
            "note": row["note"],
            "analyst": row["analyst"],
            "decided_at": _iso(row["decided_at"]),
        }

    async def open_items(self, query: ReviewFilter) -> list[dict[str, Any]]:
        conditions = ["q.verdict IS NULL"]
        args: list[Any] = []

        def bind(sql: str, value: Any) -> None:
            args.append(value)
            conditions.append(sql.replace("?", f"${len(args)}"))

        # payload_rest: an array (amount first, codec.REST_FIELDS) or, before 012, an object
        amount = (
            "(CASE WHEN left(t.payload_rest, 1) = '[' THEN t.payload_rest::jsonb ->> 0"
            " ELSE coalesce(t.payload_rest, t.payload)::jsonb ->> 'amount' END)::numeric"
        )
        if query.min_amount is not None:
            bind(f"{amount} >= ?::numeric", str(query.min_amount))
        if query.max_amount is not None:
            bind(f"{amount} <= ?::numeric", str(query.max_amount))
        if query.reason is not None:
            bind("t.reasons::jsonb @> jsonb_build_array(jsonb_build_object('code', ?::text))",
                 query.reason)  # fmt: skip
        if query.opened_before is not None:
            bind("q.opened_at < ?", query.opened_before)
        if query.after is not None:
            cursor = await self.pool.fetchrow(
                "SELECT score, opened_at FROM review_queue WHERE transaction_id = $1", query.after
            )
            if cursor is None:
                return []
            # the bound on the leading column lets the index scan start at the cursor
            if query.order == "score":
                bind("q.score <= ?", cursor["score"])
                bind(f"(q.score < ${len(args)} OR q.transaction_id > ?)", query.after)
            else:
                bind("q.opened_at >= ?", cursor["opened_at"])
                bind(f"(q.opened_at > ${len(args)} OR q.transaction_id > ?)", query.after)
        args.append(query.limit)
        rows = await self.pool.fetch(
            f"{_ITEM} WHERE {' AND '.join(conditions)}"
            f" ORDER BY {_ORDER[query.order]} LIMIT ${len(args)}",
            *args,
        )
        return [await self._item(r) for r in rows]

    async def item(self, transaction_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(f"{_ITEM} WHERE q.transaction_id = $1", transaction_id)
        return None if row is None else await self._item(row)

    async def close(
        self, transaction_id: str, verdict: Verdict, note: str | None, analyst: str, now: datetime
    ) -> Closed | None:
        async with self.pool.acquire() as conn, conn.transaction():
            # conditional: of two verdicts at once, the second waits on the row and finds it closed
            event_time = await conn.fetchval(
                "UPDATE review_queue SET verdict = $2, note = $3, analyst = $4, decided_at = $5"
                " WHERE transaction_id = $1 AND verdict IS NULL RETURNING event_time",
                transaction_id,
                verdict,
                note,
                analyst,
                now,
            )
            if event_time is None:
                first = await conn.fetchrow(
                    "SELECT verdict, analyst, decided_at FROM review_queue"
                    " WHERE transaction_id = $1",
                    transaction_id,
                )
                if first is None:
                    return None
                raise AlreadyDecided(first["verdict"], first["analyst"], first["decided_at"])
            await conn.execute(  # the verdict is published outward (migration 018)
                "INSERT INTO decision_outbox (transaction_id, event_time, kind)"
                " VALUES ($1, $2, 'verdict')",
                transaction_id,
                event_time,
            )
            label = label_for(transaction_id, verdict, now, event_time)
            seq = None
            if label is not None:
                (seq,) = await insert_received(conn, [label])
                await conn.execute(
                    "UPDATE review_queue SET label_seq = $2 WHERE transaction_id = $1",
                    transaction_id,
                    seq,
                )
        item = await self.item(transaction_id)
        assert item is not None
        return Closed(item, seq)

    async def queue_stats(self) -> tuple[int, datetime | None]:
        row = await self.pool.fetchrow(
            "SELECT count(*) AS open, min(opened_at) AS oldest FROM review_queue"
            " WHERE verdict IS NULL"
        )
        assert row is not None
        return int(row["open"]), row["oldest"]
