"""Postgres, the durable record: one method per statement (asyncpg, no ORM).

:class:`PgRepository` implements every store port of :mod:`app.core.ports`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from app.core.ports import LabelEntry, LearnRow, ParkedLabel, ScoredRecord, Stored

_INSERT_SCORED = """
INSERT INTO transactions (transaction_id, card_id, merchant_id, event_time, payload,
    payload_digest, features, feature_set, feature_status, scores, score, decision, response,
    source, scored_at)
SELECT t.id, t.card, t.merchant, t.at, t.payload::jsonb, t.digest, t.features::jsonb, t.fset,
    t.fstatus, t.scores::jsonb, t.score, t.decision, t.response::jsonb, t.source, t.scored_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::float8[], $12::text[], $13::text[],
    $14::text[], $15::timestamptz[])
    AS t(id, card, merchant, at, payload, digest, features, fset, fstatus, scores, score,
         decision, response, source, scored_at)
ON CONFLICT (transaction_id) DO NOTHING
RETURNING transaction_id
"""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()  # NaN/inf are impossible here: orjson writes null


class PgRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def find(self, ids: Sequence[str]) -> dict[str, Stored]:
        rows = await self.pool.fetch(
            "SELECT transaction_id, payload_digest, response FROM transactions"
            " WHERE transaction_id = ANY($1::text[])",
            list(ids),
        )
        return {
            r["transaction_id"]: Stored(r["payload_digest"], json.loads(r["response"]))
            for r in rows
        }

    async def insert_scored(self, records: Sequence[ScoredRecord]) -> set[str]:
        """Insert in one statement; return the ids that were new (others already existed)."""
        columns = (
            [r.transaction_id for r in records],
            [r.card_id for r in records],
            [r.merchant_id for r in records],
            [r.event_time for r in records],
            [r.payload for r in records],
            [r.digest for r in records],
            [_dumps(r.features) for r in records],
            [r.feature_set for r in records],
            [r.feature_status for r in records],
            [_dumps(r.scores) for r in records],
            [r.score for r in records],
            [r.decision for r in records],
            [r.response for r in records],
            [r.source for r in records],
            [r.scored_at for r in records],
        )
        rows = await self.pool.fetch(_INSERT_SCORED, *columns)
        return {row["transaction_id"] for row in rows}

    async def get(self, transaction_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT payload, features, feature_set, feature_status, scores, decision, response,"
            " source, scored_at, label_is_fraud FROM transactions WHERE transaction_id = $1",
            transaction_id,
        )
        if row is None:
            return None
        return {
            "transaction": json.loads(row["payload"]),
            "features": json.loads(row["features"]),
            "feature_set": row["feature_set"],
            "feature_status": row["feature_status"],
            "scores": json.loads(row["scores"]),
            "decision": row["decision"],
            "score": json.loads(row["response"]),
            "source": row["source"],
            "scored_at": row["scored_at"].isoformat(),
            "label": row["label_is_fraud"],
        }

    async def for_learning(self, ids: Sequence[str]) -> dict[str, LearnRow]:
        rows = await self.pool.fetch(
            "SELECT transaction_id, payload, features, scores, event_time, label_is_fraud"
            " FROM transactions WHERE transaction_id = ANY($1::text[])",
            list(ids),
        )
        return {r["transaction_id"]: _learn_row(r) for r in rows}

    async def record_labels(self, entries: Sequence[LabelEntry]) -> list[int | None]:
        """Append labels (and learning-log rows) in one transaction; learn_seq per entry.

        Three set-based statements per batch, whatever its size: the labels, the current
        label of each transaction, the learning log.
        """
        if not entries:
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            label_seqs = [
                row["seq"]
                for row in await conn.fetch(
                    "INSERT INTO labels (transaction_id, is_fraud, labeled_at, source, status)"
                    " SELECT t.id, t.fraud, t.at, t.source, t.status FROM unnest($1::text[],"
                    " $2::bool[], $3::timestamptz[], $4::text[], $5::text[]) WITH ORDINALITY"
                    " AS t(id, fraud, at, source, status, n) ORDER BY t.n RETURNING seq",
                    [e.transaction_id for e in entries],
                    [e.is_fraud for e in entries],
                    [e.labeled_at for e in entries],
                    [e.source for e in entries],
                    [e.status for e in entries],
                )
            ]
            return await _apply_labels(conn, list(zip(label_seqs, entries, strict=True)))

    async def parked_ready(self, limit: int = 1000) -> list[ParkedLabel]:
        """Parked labels whose transaction has arrived since, in arrival order."""
        rows = await self.pool.fetch(
            "SELECT l.seq, l.transaction_id, l.is_fraud, l.labeled_at, l.source FROM labels l"
            " JOIN transactions t USING (transaction_id) WHERE l.status = 'parked'"
            " ORDER BY l.seq LIMIT $1",
            limit,
        )
        return [ParkedLabel(**dict(row)) for row in rows]

    async def adopt_parked(
        self, adopted: Sequence[tuple[int, LabelEntry]], superseded: Sequence[int]
    ) -> list[int | None]:
        """Parked labels whose transaction arrived: learn the newest per transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE labels SET status = 'superseded' WHERE seq = ANY($1::bigint[])",
                list(superseded),
            )
            await conn.execute(
                "UPDATE labels l SET status = t.status FROM unnest($1::bigint[], $2::text[])"
                " AS t(seq, status) WHERE l.seq = t.seq",
                [seq for seq, _ in adopted],
                [e.status for _, e in adopted],
            )
            return await _apply_labels(conn, list(adopted))

    async def expire_parked(self, received_before: datetime) -> int:
        result = await self.pool.execute(
            "UPDATE labels SET status = 'expired' WHERE status = 'parked' AND received_at < $1",
            received_before,
        )
        return int(result.split()[-1])

    async def learn_log_after(
        self, seq: int, batch: int = 2000
    ) -> AsyncIterator[tuple[int, LearnRow, bool, bool, datetime]]:
        """(learn_seq, row, is_fraud) after ``seq`` in learning order, for checkpoint catch-up."""
        while True:
            rows = await self.pool.fetch(
                "SELECT g.seq, g.is_fraud AS learned, g.evaluate, t.transaction_id, t.payload,"
                " t.features, t.scores, t.event_time, t.label_is_fraud, l.labeled_at"
                " FROM learn_log g JOIN transactions t USING (transaction_id)"
                " JOIN labels l ON l.seq = g.label_seq WHERE g.seq > $1"
                " ORDER BY g.seq LIMIT $2",
                seq,
                batch,
            )
            for row in rows:
                learned, evaluate, at = row["learned"], row["evaluate"], row["labeled_at"]
                yield row["seq"], _learn_row(row), learned, evaluate, at
            if len(rows) < batch:
                return
            seq = rows[-1]["seq"]

    async def save_snapshot(
        self,
        name: str,
        version: str,
        learn_seq: int,
        feature_set: str,
        metadata: dict[str, Any],
        blob: bytes,
    ) -> None:
        await self.pool.execute(
            "INSERT INTO model_snapshots (model_name, model_version, learn_seq, feature_set,"
            " metadata, blob) VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
            name,
            version,
            learn_seq,
            feature_set,
            _dumps(metadata),
            blob,
        )
        # keep the three newest per model
        await self.pool.execute(
            "DELETE FROM model_snapshots WHERE model_name = $1 AND id NOT IN (SELECT id FROM"
            " model_snapshots WHERE model_name = $1 ORDER BY id DESC LIMIT 3)",
            name,
        )

    async def latest_snapshot(self, name: str) -> tuple[int, bytes] | None:
        row = await self.pool.fetchrow(
            "SELECT learn_seq, blob FROM model_snapshots WHERE model_name = $1"
            " ORDER BY id DESC LIMIT 1",
            name,
        )
        return None if row is None else (row["learn_seq"], bytes(row["blob"]))

    async def record_promotion(self, record: dict[str, Any]) -> None:
        await self.pool.execute(
            "INSERT INTO promotions (from_model, to_model, reason, automatic, record)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            record["from_model"],
            record["to_model"],
            record["reason"],
            bool(record.get("automatic", False)),
            _dumps(record),
        )

    async def promotions(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT record FROM promotions ORDER BY id")
        return [json.loads(r["record"]) for r in rows]

    async def current_champion(self) -> str | None:
        name: str | None = await self.pool.fetchval(
            "SELECT to_model FROM promotions ORDER BY id DESC LIMIT 1"
        )
        return name

    async def history(self, batch: int = 5000) -> AsyncIterator[asyncpg.Record]:
        """Every transaction in event-time order with its current label (for feature rebuild)."""
        async with self.pool.acquire() as conn, conn.transaction():
            cursor = conn.cursor(
                "SELECT t.payload, l.is_fraud, l.labeled_at, l.source FROM transactions t"
                " LEFT JOIN labels l ON l.seq = t.label_seq"
                " ORDER BY t.event_time, t.transaction_id",
                prefetch=batch,
            )
            async for row in cursor:
                yield row

    async def counts(self) -> dict[str, int]:
        row = await self.pool.fetchrow(
            "SELECT (SELECT count(*) FROM transactions) AS transactions,"
            " (SELECT count(*) FROM labels) AS labels, (SELECT count(*) FROM learn_log) AS learned"
        )
        assert row is not None
        return dict(row)


async def _apply_labels(conn: Any, items: list[tuple[int, LabelEntry]]) -> list[int | None]:
    """Set each transaction's current label and append the learning log; learn_seq per item."""
    current = {
        e.transaction_id: (seq, e) for seq, e in items if e.status in {"learned", "relabeled"}
    }
    if current:
        await conn.execute(
            "UPDATE transactions t SET label_is_fraud = u.fraud, label_seq = u.seq"
            " FROM unnest($1::text[], $2::bool[], $3::bigint[]) AS u(id, fraud, seq)"
            " WHERE t.transaction_id = u.id",
            list(current),
            [e.is_fraud for _, e in current.values()],
            [seq for seq, _ in current.values()],
        )
    learn = [(seq, e) for seq, e in items if e.learn]
    seqs: list[int] = []
    if learn:
        rows = await conn.fetch(
            "INSERT INTO learn_log (transaction_id, is_fraud, label_seq, evaluate)"
            " SELECT u.id, u.fraud, u.seq, u.evaluate FROM unnest($1::text[], $2::bool[],"
            " $3::bigint[], $4::bool[]) WITH ORDINALITY AS u(id, fraud, seq, evaluate, n)"
            " ORDER BY u.n RETURNING seq",
            [e.transaction_id for _, e in learn],
            [e.is_fraud for _, e in learn],
            [seq for seq, _ in learn],
            [e.evaluate for _, e in learn],
        )
        seqs = [row["seq"] for row in rows]
    it = iter(seqs)
    return [next(it) if e.learn else None for _, e in items]


def _learn_row(row: Any) -> LearnRow:
    stored = json.loads(row["scores"])
    scores = {s["name"]: float(s["score"]) for s in stored}
    parts = {s["name"]: s["parts"] for s in stored if s.get("parts")}
    return LearnRow(
        transaction_id=row["transaction_id"],
        payload=json.loads(row["payload"]),
        features=json.loads(row["features"]),
        scores=scores,
        parts=parts,
        event_time=row["event_time"],
        label_is_fraud=row["label_is_fraud"],
    )
