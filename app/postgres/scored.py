"""Postgres room: scored transactions — the group-committed insert, replay lookup, rebuild.

A stored row is compact (migration 002): features as one float4 array in its feature set's
stored order, scores against a lineup stored once, the payload and the answer rebuilt from
columns unless they could not be (then kept verbatim).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import orjson

from app.core.ports import LearnRow, ScoredRecord, Stored
from app.core.scoring import digest as payload_digest
from app.postgres import codec
from app.postgres.layout import PgLayout

log = logging.getLogger(__name__)
_DEADLOCK_ATTEMPTS = 3

_INSERT_SCORED = """
WITH t AS (
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::float8[],
        $5::int[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
        $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[],
        $18::text[], $19::bytea[], $20::text[], $21::text[])
        AS t(id, at, scored_at, score, lineup, card, merchant, fset, fstatus, decision, source,
             scores, features, payload_rest, reasons, payload, digest, response, learned, decided,
             shadow)
), ids AS (
    INSERT INTO transaction_ids (transaction_id, event_time)
    SELECT id, at FROM t
    ON CONFLICT (transaction_id) DO NOTHING
    RETURNING transaction_id
), stored AS (
    INSERT INTO scored_transactions (event_time, scored_at, score, lineup, transaction_id,
        card_id, merchant_id, feature_set, feature_status, decision, source, scores, features,
        payload_rest, reasons, payload, digest, response, learned_packed, decided, shadow_hits)
    SELECT t.at, t.scored_at, t.score, t.lineup, t.id, t.card, t.merchant, t.fset, t.fstatus,
        t.decision, t.source, t.scores::float8[], t.features::real[], t.payload_rest, t.reasons,
        t.payload, t.digest, t.response, t.learned, t.decided, t.shadow
    FROM t JOIN ids ON ids.transaction_id = t.id
    RETURNING transaction_id, event_time, score, decision
), queued AS (
    -- a review decision opens its review item in this same statement (README, "Review queue")
    INSERT INTO review_queue (transaction_id, event_time, score)
    SELECT transaction_id, event_time, score FROM stored WHERE decision = 'review'
    ON CONFLICT (transaction_id) DO NOTHING
), outboxed AS (
    -- the decision is published outward from this row (migration 018), exactly when stored
    INSERT INTO decision_outbox (transaction_id, event_time)
    SELECT transaction_id, event_time FROM stored
)
SELECT transaction_id FROM stored
"""
# The columns a stored record is rebuilt from (find, get, learning, history).
_RECORD = (
    "t.transaction_id, t.card_id, t.merchant_id, t.event_time, t.scored_at, t.score, t.lineup,"
    " t.feature_set, t.feature_status, t.decision, t.source, t.scores, t.features,"
    " t.payload_rest, t.reasons, t.payload, t.digest, t.response, t.learned, t.learned_packed,"
    " t.decided"
)
# A stored transaction by id: the id table says where it is (its partition, by event time).
_BY_IDS = (
    f"SELECT {_RECORD}, i.label_is_fraud FROM transaction_ids i JOIN scored_transactions t"  # noqa: S608 (constants)
    " ON t.event_time = i.event_time AND t.transaction_id = i.transaction_id"
)


class PgScored(PgLayout):
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
        # One lock order for every writer (flushes of one process and of other scorers): by
        # card, then id — the case trigger locks a card's open case, the unique index an id.
        chosen = sorted(unique.values(), key=lambda r: (r.card_id, r.transaction_id))
        days = {codec.utc_day(r.event_time) for r in chosen} - self._days
        if days:
            await self.ensure_partitions(sorted(days))
        rows = [await self._encode(r) for r in chosen]
        columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * 21
        for attempt in range(1, _DEADLOCK_ATTEMPTS + 1):
            try:
                inserted = await self.pool.fetch(_INSERT_SCORED, *columns)
                return {row["transaction_id"] for row in inserted}
            except asyncpg.DeadlockDetectedError:
                # Still possible between two batches that share a card's case and an id: the
                # statement was rolled back whole, so running it again is safe.
                if attempt == _DEADLOCK_ATTEMPTS:
                    raise
                log.warning("scored insert chosen as a deadlock victim; retrying (%d)", attempt)
        raise AssertionError("unreachable")  # the last attempt returns or raises

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
            codec.pack_learned(learned), r.decided, r.shadow_hits,
        )  # fmt: skip

    async def _decode(self, r: Any) -> dict[str, Any]:
        """A stored row back to what was written: payload, digest, answer, features, scores."""
        payload = r["payload"]
        if payload is None:
            payload = codec.rebuild_payload(
                r["payload_rest"], r["transaction_id"], r["card_id"], r["merchant_id"],
                r["event_time"],
            )  # fmt: skip
        packed, learned = r["learned_packed"], r["learned"]  # since 012; 004 to 011
        if packed is not None:
            learned = codec.unpack_learned(packed)
        lineup = codec.join_versions(await self._lineup(r["lineup"]), learned)
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
