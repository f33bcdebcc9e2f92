"""Postgres room: labels and the learning log (written by the leading learner alone)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from app.core.ports import LabelEntry, LearnRow, ParkedLabel, ReceivedLabel
from app.postgres.leadership import check_epoch
from app.postgres.scored import _RECORD, PgScored
from features.schema import Label


class PgLabels(PgScored):
    async def receive_labels(self, labels: Sequence[Label]) -> list[int]:
        """Record labels as received (durable now; the learner settles them); their seqs."""
        return await insert_received(self.pool, labels)

    async def received(self, limit: int = 1000) -> list[ReceivedLabel]:
        """Labels not settled yet, in arrival order (a late commit is simply claimed later)."""
        rows = await self.pool.fetch(
            "SELECT seq, transaction_id, is_fraud, labeled_at, source FROM labels"
            " WHERE status = 'received' ORDER BY seq LIMIT $1",
            limit,
        )
        return [
            ReceivedLabel(
                row["seq"],
                Label(
                    transaction_id=row["transaction_id"], is_fraud=row["is_fraud"],
                    labeled_at=row["labeled_at"], source=row["source"],
                ),
            )
            for row in rows
        ]  # fmt: skip

    async def settle_labels(
        self, settled: Sequence[tuple[int, LabelEntry]], epoch: int
    ) -> list[int | None]:
        """Give received labels their status and append the learning log, under ``epoch``."""
        if not settled:
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            await check_epoch(conn, epoch)
            await conn.execute(
                "UPDATE labels l SET status = t.status FROM unnest($1::bigint[], $2::text[])"
                " AS t(seq, status) WHERE l.seq = t.seq AND l.status = 'received'",
                [seq for seq, _ in settled],
                [e.status for _, e in settled],
            )
            return await _apply_labels(conn, list(settled), epoch)

    async def label_statuses(self, seqs: Sequence[int]) -> dict[int, str]:
        rows = await self.pool.fetch(
            "SELECT seq, status FROM labels WHERE seq = ANY($1::bigint[])", list(seqs)
        )
        return {row["seq"]: row["status"] for row in rows}

    async def parked_ready(self, limit: int = 1000) -> list[ParkedLabel]:
        """Parked labels whose transaction has arrived since, in arrival order, with the
        transaction's current label.

        Only transactions whose record can be read: one whose day partition is detached
        (archived) keeps its labels parked, and they never crowd out the others.
        """
        rows = await self.pool.fetch(
            "SELECT l.seq, l.transaction_id, l.is_fraud, l.labeled_at, l.source,"
            " t.label_is_fraud AS current_is_fraud, c.labeled_at AS current_labeled_at,"
            " c.seq AS current_seq FROM labels l JOIN transaction_ids t USING (transaction_id)"
            " LEFT JOIN labels c ON c.seq = t.label_seq WHERE l.status = 'parked'"
            " AND EXISTS (SELECT FROM scored_transactions s WHERE s.event_time = t.event_time"
            " AND s.transaction_id = t.transaction_id) ORDER BY l.seq LIMIT $1",
            limit,
        )
        return [ParkedLabel(**dict(row)) for row in rows]

    async def adopt_parked(
        self, adopted: Sequence[tuple[int, LabelEntry]], superseded: Sequence[int], epoch: int
    ) -> list[int | None]:
        """Parked labels whose transaction arrived: learn the newest per transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            await check_epoch(conn, epoch)
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
            return await _apply_labels(conn, list(adopted), epoch)

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
            # a page of the log first, then its transactions: a log row whose transaction was
            # pruned is skipped without ending the catch-up early
            rows = await self.pool.fetch(
                f"SELECT g.seq, g.is_fraud AS log_is_fraud, g.evaluate, {_RECORD},"  # noqa: S608
                " i.label_is_fraud, l.labeled_at"
                " FROM (SELECT * FROM learn_log WHERE seq > $1 ORDER BY seq LIMIT $2) g"
                " JOIN labels l ON l.seq = g.label_seq"
                " LEFT JOIN transaction_ids i ON i.transaction_id = g.transaction_id"
                " LEFT JOIN scored_transactions t"
                " ON t.event_time = i.event_time AND t.transaction_id = i.transaction_id"
                " ORDER BY g.seq",
                seq,
                batch,
            )
            for row in rows:
                if row["transaction_id"] is not None:
                    learn_row = await self._learn_row(row)
                    is_fraud, evaluate = row["log_is_fraud"], row["evaluate"]
                    at = row["labeled_at"]
                    yield row["seq"], learn_row, is_fraud, evaluate, at
            if len(rows) < batch:
                return
            seq = rows[-1]["seq"]


async def insert_received(conn: Any, labels: Sequence[Label]) -> list[int]:
    """The durable label intake (status received; the learner settles), on a pool or in a
    caller's transaction (a review verdict records its label with the item's close)."""
    if not labels:
        return []
    rows = await conn.fetch(
        "INSERT INTO labels (transaction_id, is_fraud, labeled_at, source, status)"
        " SELECT t.id, t.fraud, t.at, t.source, 'received' FROM unnest($1::text[],"
        " $2::bool[], $3::timestamptz[], $4::text[]) WITH ORDINALITY"
        " AS t(id, fraud, at, source, n) ORDER BY t.n RETURNING seq",
        [lb.transaction_id for lb in labels],
        [lb.is_fraud for lb in labels],
        [lb.labeled_at for lb in labels],
        [lb.source for lb in labels],
    )
    return [row["seq"] for row in rows]


async def _apply_labels(
    conn: Any, items: list[tuple[int, LabelEntry]], epoch: int
) -> list[int | None]:
    """Set each transaction's current label and append the learning log; learn_seq per item.

    The log is gapless: seq = head + 1, in this (fenced, single-writer) transaction. The head
    (migration 012) only moves forward: pruning deletes log rows, never numbers.
    """
    current = {
        e.transaction_id: (seq, e) for seq, e in items if e.status in {"learned", "relabeled"}
    }
    if current:
        await conn.execute(
            "UPDATE transaction_ids t SET label_is_fraud = u.fraud, label_seq = u.seq"
            " FROM unnest($1::text[], $2::bool[], $3::bigint[]) AS u(id, fraud, seq)"
            " WHERE t.transaction_id = u.id",
            list(current),
            [e.is_fraud for _, e in current.values()],
            [seq for seq, _ in current.values()],
        )
    learn = [(seq, e) for seq, e in items if e.learn]
    seqs: list[int] = []
    if learn:
        last = await conn.fetchval(
            "UPDATE learn_log_head SET seq = seq + $1 RETURNING seq - $1", len(learn)
        )
        rows = await conn.fetch(
            "INSERT INTO learn_log (seq, transaction_id, is_fraud, label_seq, evaluate, epoch)"
            " SELECT $5 + u.n, u.id, u.fraud, u.seq, u.evaluate, $6 FROM unnest($1::text[],"
            " $2::bool[], $3::bigint[], $4::bool[]) WITH ORDINALITY"
            " AS u(id, fraud, seq, evaluate, n) ORDER BY u.n RETURNING seq",
            [e.transaction_id for _, e in learn],
            [e.is_fraud for _, e in learn],
            [seq for seq, _ in learn],
            [e.evaluate for _, e in learn],
            last,
            epoch,
        )
        seqs = [row["seq"] for row in rows]
    it = iter(seqs)
    return [next(it) if e.learn else None for _, e in items]
