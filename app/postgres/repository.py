"""Postgres, the durable record: one method per statement (asyncpg, no ORM).

:class:`PgRepository` implements every store port of :mod:`app.core.ports`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from app.core.ports import (
    LabelEntry,
    LearnRow,
    ParkedLabel,
    ReceivedLabel,
    ScoredRecord,
    Stored,
)
from app.core.scoring import digest as payload_digest
from app.postgres import codec
from app.postgres.leadership import check_epoch
from features import definitions
from features.schema import Label

log = logging.getLogger(__name__)

_INSERT_SCORED = """
WITH t AS (
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::float8[],
        $5::int[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
        $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[],
        $18::text[], $19::text[], $20::text[])
        AS t(id, at, scored_at, score, lineup, card, merchant, fset, fstatus, decision, source,
             scores, features, payload_rest, reasons, payload, digest, response, learned, decided)
), ids AS (
    INSERT INTO transaction_ids (transaction_id, event_time)
    SELECT id, at FROM t
    ON CONFLICT (transaction_id) DO NOTHING
    RETURNING transaction_id
), stored AS (
    INSERT INTO scored_transactions (event_time, scored_at, score, lineup, transaction_id,
        card_id, merchant_id, feature_set, feature_status, decision, source, scores, features,
        payload_rest, reasons, payload, digest, response, learned, decided)
    SELECT t.at, t.scored_at, t.score, t.lineup, t.id, t.card, t.merchant, t.fset, t.fstatus,
        t.decision, t.source, t.scores::float8[], t.features::real[], t.payload_rest, t.reasons,
        t.payload, t.digest, t.response, t.learned::int[], t.decided
    FROM t JOIN ids ON ids.transaction_id = t.id
    RETURNING transaction_id, event_time, score, decision
), queued AS (
    -- a review decision opens its review item in this same statement (README, "Review queue")
    INSERT INTO review_queue (transaction_id, event_time, score)
    SELECT transaction_id, event_time, score FROM stored WHERE decision = 'review'
    ON CONFLICT (transaction_id) DO NOTHING
)
SELECT transaction_id FROM stored
"""
# The columns a stored record is rebuilt from (find, get, learning, history).
_RECORD = (
    "t.transaction_id, t.card_id, t.merchant_id, t.event_time, t.scored_at, t.score, t.lineup,"
    " t.feature_set, t.feature_status, t.decision, t.source, t.scores, t.features,"
    " t.payload_rest, t.reasons, t.payload, t.digest, t.response, t.learned, t.decided"
)
# A stored transaction by id: the id table says where it is (its partition, by event time).
_BY_IDS = (
    f"SELECT {_RECORD}, i.label_is_fraud FROM transaction_ids i JOIN scored_transactions t"  # noqa: S608 (constants)
    " ON t.event_time = i.event_time AND t.transaction_id = i.transaction_id"
)


#: Keys of the canonical payload that are columns of their own (dropped from payload_rest).
class PgRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._feature_sets: dict[str, tuple[str, ...]] = {}
        self._lineup_ids: dict[codec.Lineup, int] = {}
        self._lineups: dict[int, codec.Lineup] = {}
        self._days: set[date] = set()  # day partitions known to exist

    # ---- layout: feature sets, model lineups, day partitions ----------------------------
    async def _feature_names(
        self, feature_set: str, *, register: Sequence[str] = ()
    ) -> tuple[str, ...]:
        """The stored order of ``feature_set``; registered from ``register`` when writing.

        The stored order (table feature_sets) is the one every row of the set uses. A new set
        is registered in :data:`features.definitions.FEATURE_NAMES` order when it is the current
        one; migration 002 registered the sets of upgraded rows in jsonb key order. Refused,
        loudly: a row of a set this database does not record (its snapshot could not be named)
        and the current set's id stored with other names.
        """
        names = self._feature_sets.get(feature_set)
        if names is not None:
            return names
        if feature_set == definitions.FEATURE_SET_ID:
            register = definitions.FEATURE_NAMES
        row = await self.pool.fetchval("SELECT names FROM feature_sets WHERE id = $1", feature_set)
        if row is None and register:
            await self.pool.execute(
                "INSERT INTO feature_sets (id, names) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                feature_set,
                list(register),
            )
            row = await self.pool.fetchval(
                "SELECT names FROM feature_sets WHERE id = $1", feature_set
            )
        if row is None:
            raise codec.UnknownFeatureSet(
                f"feature set {feature_set!r} has no stored feature order (table feature_sets):"
                " its snapshots cannot be read"
            )
        names = tuple(row)
        current = feature_set == definitions.FEATURE_SET_ID
        if current and sorted(names) != sorted(definitions.FEATURE_NAMES):
            raise codec.UnknownFeatureSet(
                f"feature set {feature_set!r} is stored with other feature names than"
                " features.definitions gives it"
            )
        self._feature_sets[feature_set] = names
        return names

    async def _lineup_id(self, lineup: codec.Lineup) -> int:
        known = self._lineup_ids.get(lineup)
        if known is not None:
            return known
        models = codec.dumps([list(m) for m in lineup])
        found = await self.pool.fetchval(
            "WITH new AS (INSERT INTO model_lineups (models) VALUES ($1::jsonb)"
            " ON CONFLICT (models) DO NOTHING RETURNING id)"
            " SELECT id FROM new UNION ALL SELECT id FROM model_lineups WHERE models = $1::jsonb",
            models,
        )
        if found is None:  # inserted by a concurrent writer after this statement's snapshot
            found = await self.pool.fetchval(
                "SELECT id FROM model_lineups WHERE models = $1::jsonb", models
            )
        if found is None:
            raise RuntimeError(f"model lineup {models} could be neither inserted nor read")
        self._lineup_ids[lineup], self._lineups[found] = found, lineup
        return int(found)

    async def _lineup(self, lineup_id: int) -> codec.Lineup:
        known = self._lineups.get(lineup_id)
        if known is None:
            models = await self.pool.fetchval(
                "SELECT models FROM model_lineups WHERE id = $1", lineup_id
            )
            known = tuple((m[0], m[1], m[2]) for m in json.loads(models))
            self._lineups[lineup_id] = known
        return known

    async def ensure_partitions(self, days: Sequence[date]) -> int:
        """Create the day partitions of ``days`` that do not exist yet; return how many."""
        created = await self.pool.fetchval(
            "SELECT riverguard_ensure_partitions($1::date[])", sorted(set(days))
        )
        self._days.update(days)
        return int(created)

    async def partitions(self) -> list[tuple[str, date | None]]:
        """(name, UTC day) of every partition of scored_transactions; the default has no day."""
        rows = await self.pool.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'scored_transactions'::regclass ORDER BY c.relname"
        )
        return [(r["relname"], codec.partition_day(r["relname"])) for r in rows]

    async def prune(self, retention_days: int, today: date) -> list[str]:
        """Drop the day partitions older than ``retention_days`` before ``today`` (UTC).

        With them go their ids, labels and learning-log rows, and the default partition's rows
        of those days. Days before the new horizon get no partition again. One transaction.
        """
        horizon = today - timedelta(days=retention_days)
        cutoff = datetime.combine(horizon, datetime.min.time(), UTC)
        # attached partitions and detached ones (archived, README "Storage"), by name
        tables = await self.pool.fetch(
            "SELECT relname FROM pg_class WHERE relkind = 'r'"
            " AND relnamespace = current_schema()::regnamespace"
            " AND relname LIKE 'scored\\_transactions\\_p%'"
        )
        days = {r["relname"]: codec.partition_day(r["relname"]) for r in tables}
        old = sorted(name for name, day in days.items() if day is not None and day < horizon)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(5392942, 1)")
            # names from the catalog, matching scored_transactions_pYYYYMMDD (see partitions)
            sources = [f'SELECT transaction_id FROM "{name}"' for name in old]  # noqa: S608
            sources.append(
                "SELECT transaction_id FROM scored_transactions_default WHERE event_time < $1"
            )
            gone = " UNION ALL ".join(sources)
            for table in ("learn_log", "labels", "review_queue", "transaction_ids"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE transaction_id IN ({gone})",  # noqa: S608
                    cutoff,
                )
            await conn.execute(
                "DELETE FROM scored_transactions_default WHERE event_time < $1", cutoff
            )
            for name in old:
                await conn.execute(f'DROP TABLE "{name}"')
            await conn.execute(
                "INSERT INTO storage_horizon (oldest_day) VALUES ($1) ON CONFLICT (only_row)"
                " DO UPDATE SET oldest_day ="
                " greatest(storage_horizon.oldest_day, excluded.oldest_day)",
                horizon,
            )
        self._days = {d for d in self._days if d >= horizon}
        return old

    # ---- scored transactions ------------------------------------------------------------
    async def find(self, ids: Sequence[str]) -> dict[str, Stored]:
        rows = await self.pool.fetch(
            f"{_BY_IDS} WHERE i.transaction_id = ANY($1::text[])", list(ids)
        )
        out = {}
        for r in rows:
            decoded = await self._decode(r)
            out[r["transaction_id"]] = Stored(decoded["digest"], json.loads(decoded["response"]))
        return out

    async def insert_scored(self, records: Sequence[ScoredRecord]) -> set[str]:
        """Insert in one statement; return the ids that were new (others already existed).

        A second copy of an id in ``records`` is not written (the first one is), whatever its
        event time: transaction_ids holds each id once, across every partition.
        """
        unique: dict[str, ScoredRecord] = {}
        for record in records:
            unique.setdefault(record.transaction_id, record)
        chosen = list(unique.values())
        days = {codec.utc_day(r.event_time) for r in chosen} - self._days
        if days:
            await self.ensure_partitions(sorted(days))
        rows = [await self._encode(r) for r in chosen]
        columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * 20
        inserted = await self.pool.fetch(_INSERT_SCORED, *columns)
        return {row["transaction_id"] for row in inserted}

    async def _encode(self, r: ScoredRecord) -> tuple[Any, ...]:
        names = await self._feature_names(r.feature_set, register=list(r.features))
        if len(r.features) != len(names) or any(n not in r.features for n in names):
            raise ValueError(
                f"transaction {r.transaction_id}: its features are not those of feature set"
                f" {r.feature_set!r}"
            )
        # float4: the learner (and a restart re-learning the log) reads this rounded snapshot,
        # never the float64 values scored with, so both learn the same numbers.
        features = [r.features[n] for n in names]
        lineup, values = codec.flatten_scores(r.scores)
        rest, payload = codec.pack_payload(r)
        dig = None if payload_digest(r.payload) == r.digest else r.digest
        given = r.reasons if r.reasons is not None else orjson.loads(r.response).get("reasons")
        reasons_list = given or None
        reasons = None if reasons_list is None else codec.dumps(reasons_list)
        try:
            rebuilt = codec.rebuild_response(
                r.transaction_id, r.score, r.decision, lineup, values, reasons, r.event_time,
                r.scored_at, r.decided,
            )  # fmt: skip
        except (ValueError, TypeError):
            rebuilt = None
        response = None if rebuilt == r.response else r.response
        if payload is not None or dig is not None or response is not None:
            log.warning("transaction %s stored verbatim (not rebuildable)", r.transaction_id)
        # versions change with every label: the lineup keeps the definitions, the row the counts
        stored, learned = codec.split_versions(lineup)
        return (
            r.transaction_id, r.event_time, r.scored_at, r.score, await self._lineup_id(stored),
            r.card_id, r.merchant_id, r.feature_set, r.feature_status, r.decision, r.source,
            codec.dumps(values).replace("[", "{").replace("]", "}"),
            codec.dumps(features).replace("[", "{").replace("]", "}"),
            rest, reasons, payload, dig, response,
            codec.dumps(learned).replace("[", "{").replace("]", "}"), r.decided,
        )  # fmt: skip

    async def _decode(self, r: Any) -> dict[str, Any]:
        """A stored row back to what was written: payload, digest, answer, features, scores."""
        payload = r["payload"]
        if payload is None:
            payload = codec.rebuild_payload(
                r["payload_rest"], r["transaction_id"], r["card_id"], r["merchant_id"],
                r["event_time"],
            )  # fmt: skip
        learned = r["learned"]
        lineup = codec.join_versions(
            await self._lineup(r["lineup"]), None if learned is None else list(learned)
        )
        scores = list(r["scores"])
        response = r["response"]
        if response is None:
            response = codec.rebuild_response(
                r["transaction_id"], r["score"], r["decision"], lineup, scores, r["reasons"],
                r["event_time"], r["scored_at"], r["decided"],
            )  # fmt: skip
        names = await self._feature_names(r["feature_set"])
        return {
            "payload": payload,
            "digest": r["digest"] or payload_digest(payload),
            "response": response,
            "features": dict(zip(names, (float(v) for v in r["features"]), strict=True)),
            "scores": codec.nest_scores(lineup, scores),
        }

    async def decode_row(self, row: Any) -> dict[str, Any]:
        """A row of ``_RECORD`` columns rebuilt (for the other stores of this package)."""
        return await self._decode(row)

    async def get(self, transaction_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(f"{_BY_IDS} WHERE i.transaction_id = $1", transaction_id)
        if row is None:
            return None
        decoded = await self._decode(row)
        return {
            "transaction": json.loads(decoded["payload"]),
            "features": decoded["features"],
            "feature_set": row["feature_set"],
            "feature_status": row["feature_status"],
            "scores": decoded["scores"],
            "decision": row["decision"],
            "score": json.loads(decoded["response"]),
            "source": row["source"],
            "scored_at": row["scored_at"].isoformat(),
            "label": row["label_is_fraud"],
        }

    async def for_learning(self, ids: Sequence[str]) -> dict[str, LearnRow]:
        rows = await self.pool.fetch(
            f"{_BY_IDS} WHERE i.transaction_id = ANY($1::text[])", list(ids)
        )
        return {r["transaction_id"]: await self._learn_row(r) for r in rows}

    async def _learn_row(self, row: Any) -> LearnRow:
        decoded = await self._decode(row)
        return LearnRow(
            transaction_id=row["transaction_id"],
            payload=json.loads(decoded["payload"]),
            features=decoded["features"],
            scores={s["name"]: float(s["score"]) for s in decoded["scores"]},
            parts={s["name"]: s["parts"] for s in decoded["scores"] if s.get("parts")},
            event_time=row["event_time"],
            label_is_fraud=row["label_is_fraud"],
        )

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
        """Parked labels whose transaction has arrived since, in arrival order."""
        rows = await self.pool.fetch(
            "SELECT l.seq, l.transaction_id, l.is_fraud, l.labeled_at, l.source FROM labels l"
            " JOIN transaction_ids t USING (transaction_id) WHERE l.status = 'parked'"
            " ORDER BY l.seq LIMIT $1",
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

    async def save_snapshot(
        self,
        name: str,
        version: str,
        learn_seq: int,
        feature_set: str,
        metadata: dict[str, Any],
        blob: bytes,
        epoch: int | None = None,
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if epoch is not None:
                await check_epoch(conn, epoch)
            await conn.execute(
                "INSERT INTO model_snapshots (model_name, model_version, learn_seq, feature_set,"
                " metadata, blob) VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
                name,
                version,
                learn_seq,
                feature_set,
                codec.dumps(metadata),
                blob,
            )
            # keep the three newest per model
            await conn.execute(
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
            codec.dumps(record),
        )

    async def promotions(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT record FROM promotions ORDER BY id")
        return [json.loads(r["record"]) for r in rows]

    async def current_champion(self) -> str | None:
        name: str | None = await self.pool.fetchval(
            "SELECT to_model FROM promotions ORDER BY id DESC LIMIT 1"
        )
        return name

    async def history(self, batch: int = 5000) -> AsyncIterator[dict[str, Any]]:
        """Every transaction in event-time order with its current label (for feature rebuild)."""
        async with self.pool.acquire() as conn, conn.transaction():
            cursor = conn.cursor(
                f"SELECT {_RECORD}, l.is_fraud, l.labeled_at, l.source AS label_source"  # noqa: S608
                " FROM scored_transactions t JOIN transaction_ids i USING (transaction_id)"
                " LEFT JOIN labels l ON l.seq = i.label_seq"
                " ORDER BY t.event_time, t.transaction_id",
                prefetch=batch,
            )
            async for row in cursor:
                decoded = await self._decode(row)
                yield {
                    "payload": decoded["payload"],
                    "is_fraud": row["is_fraud"],
                    "labeled_at": row["labeled_at"],
                    "source": row["label_source"],
                }

    async def counts(self) -> dict[str, int]:
        row = await self.pool.fetchrow(
            "SELECT (SELECT count(*) FROM transaction_ids) AS transactions,"
            " (SELECT count(*) FROM labels) AS labels, (SELECT count(*) FROM learn_log) AS learned"
        )
        assert row is not None
        return dict(row)


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

    The log is gapless: seq = last + 1, in this (fenced, single-writer) transaction.
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
        last = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM learn_log")
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
