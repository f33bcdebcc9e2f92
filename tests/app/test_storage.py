"""The compact, day-partitioned record (migration 002) on a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources

import asyncpg
import pytest

from app.config import ScoringSettings, Settings
from app.core.decisions import WarmUp
from app.core.metrics import Metrics
from app.core.ports import LabelEntry, ScoredRecord
from app.core.scoring import Scorer, digest
from app.postgres import codec, migrate
from app.postgres.repository import PgRepository
from features import definitions
from features.reference import ReferenceFeatures
from features.schema import Label, Transaction

DAY = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _records(
    txs: list[Transaction], champion: str | None = None, warmup: WarmUp | None = None
) -> list[ScoredRecord]:
    """Records exactly as the service builds them (reference features, default models)."""
    from app.bootstrap import build_pool

    scoring = ScoringSettings() if champion is None else ScoringSettings(champion=champion)
    settings = Settings(_env_file=None, scoring=scoring)  # type: ignore[call-arg]
    scorer = Scorer(build_pool(settings, None), Metrics(), definitions.FEATURE_SET_ID, warmup)
    reference = ReferenceFeatures()
    out = []
    for tx in txs:
        payload = tx.canonical_json()
        record, _ = scorer.record(
            tx, payload, digest(payload), reference.transaction(tx), "rest",
            tx.timestamp + timedelta(milliseconds=30),
        )  # fmt: skip
        out.append(record)
    return out


def _tx(tx_id: str, at: datetime, amount: str = "12.50", card: str = "c1") -> Transaction:
    return Transaction(
        transaction_id=tx_id, card_id=card, merchant_id="m1", amount=Decimal(amount),
        currency="EUR", timestamp=at, channel="ecom", country="FR", lat=48.85, lon=2.35,
    )  # fmt: skip


async def _learned(repo: PgRepository, ids: list[str]) -> None:
    """Labels received and settled as learned, as the learner does (epoch 0: no leader yet)."""
    labels = [
        Label(transaction_id=i, is_fraud=True, labeled_at=DAY, source="chargeback") for i in ids
    ]
    seqs = await repo.receive_labels(labels)
    entries = [LabelEntry(i, True, DAY, "chargeback", "learned", True) for i in ids]
    await repo.settle_labels(list(zip(seqs, entries, strict=True)), epoch=0)


async def test_records_are_stored_compact_and_read_back_byte_identical(
    repo: PgRepository,
) -> None:
    records = _records([_tx(f"t{i}", DAY + timedelta(minutes=i), f"{10 + i}.5") for i in range(30)])
    assert await repo.insert_scored(records) == {r.transaction_id for r in records}
    verbatim = await repo.pool.fetchval(
        "SELECT count(*) FROM scored_transactions"
        " WHERE payload IS NOT NULL OR digest IS NOT NULL OR response IS NOT NULL"
    )
    assert verbatim == 0  # every payload, digest and answer is rebuilt from the columns
    found = await repo.find([r.transaction_id for r in records])
    fresh = PgRepository(repo.pool)  # no caches: lineups and feature order from the database
    learn = await fresh.for_learning([r.transaction_id for r in records])
    for r in records:
        assert found[r.transaction_id].digest == r.digest
        assert found[r.transaction_id].response == json.loads(r.response)
        row = learn[r.transaction_id]
        assert row.payload == json.loads(r.payload)
        assert list(row.features) == list(definitions.FEATURE_NAMES)
        assert row.features == pytest.approx(r.features, rel=1e-6, abs=1e-6)  # float4
        assert row.scores == {s["name"]: s["score"] for s in r.scores}  # float8: exact


async def test_one_id_is_one_record_across_partitions(repo: PgRepository) -> None:
    [first] = _records([_tx("dup", DAY)])
    [moved] = _records([_tx("dup", DAY + timedelta(days=3))])  # same id, another day
    assert await repo.insert_scored([first]) == {"dup"}
    assert await repo.insert_scored([first]) == set()  # the same delivery again
    assert await repo.insert_scored([moved]) == set()  # would land in another partition
    assert await repo.insert_scored([moved, first]) == set()
    assert await repo.pool.fetchval("SELECT count(*) FROM scored_transactions") == 1
    stored = (await repo.find(["dup"]))["dup"]
    assert stored.digest == first.digest != moved.digest  # the service answers: conflict
    # two copies inside one batch, on two days: only the first is written
    a, b = _records([_tx("pair", DAY), _tx("pair", DAY + timedelta(days=5), "99.00")])
    assert await repo.insert_scored([a, b]) == {"pair"}
    assert (await repo.find(["pair"]))["pair"].digest == a.digest
    assert await repo.pool.fetchval("SELECT count(*) FROM transactions") == 2


async def test_retention_drops_old_partitions_and_keeps_recent_ones(repo: PgRepository) -> None:
    days = [DAY - timedelta(days=n) for n in (20, 10, 3, 0)]
    records = _records([_tx(f"d{i}", at, card=f"c{i}") for i, at in enumerate(days)])
    await repo.insert_scored(records)
    await _learned(repo, [r.transaction_id for r in records])
    named = {day for _, day in await repo.partitions() if day is not None}
    assert {at.date() for at in days} <= named
    dropped = await repo.prune(retention_days=7, today=DAY.date())
    assert sorted(dropped) == ["scored_transactions_p20260218", "scored_transactions_p20260228"]
    left = await repo.pool.fetch("SELECT transaction_id FROM transactions ORDER BY 1")
    assert [r["transaction_id"] for r in left] == ["d2", "d3"]
    assert await repo.pool.fetchval("SELECT count(*) FROM learn_log") == 2
    assert await repo.pool.fetchval("SELECT count(*) FROM labels") == 2
    # a late row of a pruned day goes to the default partition; no partition comes back
    [late] = _records([_tx("late", DAY - timedelta(days=10), card="c9")])
    assert await repo.insert_scored([late]) == {"late"}
    assert date(2026, 2, 28) not in {day for _, day in await repo.partitions()}
    assert await repo.pool.fetchval("SELECT count(*) FROM scored_transactions_default") == 1
    assert (await repo.find(["late"]))["late"].digest == late.digest
    assert await repo.prune(retention_days=7, today=DAY.date()) == []
    assert await repo.pool.fetchval("SELECT count(*) FROM scored_transactions_default") == 0


_INSERT_V1 = """
INSERT INTO transactions (transaction_id, card_id, merchant_id, event_time, payload,
    payload_digest, features, feature_set, feature_status, scores, score, decision, response,
    source, scored_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::jsonb, $8, $9, $10::jsonb, $11, $12, $13::jsonb,
    $14, $15)
"""


async def test_a_database_at_001_upgrades_with_its_history(fresh_database: str) -> None:
    records = _records([_tx(f"old{i}", DAY + timedelta(hours=i * 7)) for i in range(12)])
    conn = await asyncpg.connect(fresh_database)
    try:
        (version, sql), *_ = migrate.available()
        assert version == "001_initial"
        await conn.execute(sql)
        await conn.execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now());"
            " INSERT INTO schema_migrations (version) VALUES ('001_initial')"
        )
        for r in records:
            await conn.execute(
                _INSERT_V1, r.transaction_id, r.card_id, r.merchant_id, r.event_time,
                r.payload, r.digest, json.dumps(r.features), r.feature_set, r.feature_status,
                json.dumps(r.scores), r.score, r.decision, r.response, r.source, r.scored_at,
            )  # fmt: skip
        await conn.execute(
            "UPDATE transactions SET label_is_fraud = true, label_seq = 1"
            " WHERE transaction_id = 'old3'"
        )
        assert await migrate.migrate(conn) == [v for v, _ in migrate.available()][1:]
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=2)
    try:
        repo = PgRepository(pool)
        ids = [r.transaction_id for r in records]
        found, learn = await repo.find(ids), await repo.for_learning(ids)
        for r in records:
            assert found[r.transaction_id].digest == r.digest  # replays stay replays
            assert found[r.transaction_id].response == json.loads(r.response)
            row = learn[r.transaction_id]
            assert row.features == pytest.approx(r.features, rel=1e-6, abs=1e-6)
            assert row.scores == {s["name"]: s["score"] for s in r.scores}
            assert row.label_is_fraud is (True if r.transaction_id == "old3" else None)
        # the upgraded database takes new records, and the old ids stay taken
        [again] = _records([_tx("old0", DAY + timedelta(days=1))])
        assert await repo.insert_scored([again]) == set()
        [new] = _records([_tx("new", DAY)])
        assert await repo.insert_scored([new]) == {"new"}
        assert await repo.counts() == {"transactions": 13, "labels": 0, "learned": 0}
    finally:
        await pool.close()


def test_migration_001_is_unchanged() -> None:
    """Deployed databases have 001 applied: it must never be edited."""
    text = resources.files("app.postgres").joinpath("migrations/001_initial.sql").read_text()
    assert "label_seq       bigint\n);" in text and "payload         jsonb" in text


async def test_prune_drops_a_detached_archived_partition(repo: PgRepository) -> None:
    [old] = _records([_tx("gone", DAY - timedelta(days=30))])
    await repo.insert_scored([old])
    await repo.pool.execute(
        "ALTER TABLE scored_transactions DETACH PARTITION scored_transactions_p20260208"
    )
    assert await repo.find(["gone"]) == {}  # invisible, but its id is still taken
    assert await repo.insert_scored([old]) == set()
    assert await repo.prune(retention_days=7, today=DAY.date()) == ["scored_transactions_p20260208"]
    assert await repo.pool.fetchval("SELECT to_regclass('scored_transactions_p20260208')") is None
    assert await repo.pool.fetchval("SELECT count(*) FROM transaction_ids") == 0


async def test_a_stacks_member_scores_round_trip_and_stay_out_of_the_answer(
    repo: PgRepository,
) -> None:
    records = _records([_tx("st-1", DAY), _tx("st-2", DAY + timedelta(minutes=5))], "stack")
    assert records[0].scores[0]["parts"], "the stacked champion stored no member scores"
    assert await repo.insert_scored(records) == {"st-1", "st-2"}
    verbatim = await repo.pool.fetchval(
        "SELECT count(*) FROM scored_transactions WHERE response IS NOT NULL OR payload IS NOT NULL"
    )
    assert verbatim == 0  # the answers are rebuilt from the columns, parts and all
    rows = await repo.for_learning(["st-1", "st-2"])
    for record in records:
        row = rows[record.transaction_id]
        assert row.parts == {"stack": record.scores[0]["parts"]}
        assert row.scores == {s["name"]: s["score"] for s in record.scores}
        stored = await repo.get(record.transaction_id)
        assert stored is not None
        assert json.dumps(stored["score"], sort_keys=True) == json.dumps(
            json.loads(record.response), sort_keys=True
        )


async def test_a_warm_up_answer_is_rebuilt_exactly(repo: PgRepository) -> None:
    records = _records([_tx("wu-1", DAY)], warmup=WarmUp(labels=10))
    assert json.loads(records[0].response)["decided_by"] == "warmup"
    assert await repo.insert_scored(records) == {"wu-1"}
    verbatim = await repo.pool.fetchval(
        "SELECT count(*) FROM scored_transactions WHERE response IS NOT NULL"
    )
    assert verbatim == 0
    stored = await repo.get("wu-1")
    assert stored is not None and stored["score"] == json.loads(records[0].response)


async def test_model_versions_move_with_labels_but_the_lineups_stay_one(repo: PgRepository) -> None:
    from app.bootstrap import build_pool

    settings = Settings(_env_file=None, scoring=ScoringSettings())  # type: ignore[call-arg]
    pool = build_pool(settings, None)
    scorer = Scorer(pool, Metrics(), definitions.FEATURE_SET_ID)
    reference, records = ReferenceFeatures(), []
    for i in range(5):
        tx = _tx(f"lv-{i}", DAY + timedelta(minutes=i))
        payload = tx.canonical_json()
        result = reference.transaction(tx)
        record, _ = scorer.record(tx, payload, digest(payload), result, "rest", DAY)
        records.append(record)
        pool.learn(result.features, i % 2 == 0, {})  # every model's version moves on
    versions = {json.loads(r.response)["model"]["version"] for r in records}
    assert len(versions) == 5
    await repo.insert_scored(records)
    assert await repo.pool.fetchval("SELECT count(*) FROM model_lineups") == 1
    for record in records:
        stored = await repo.get(record.transaction_id)
        assert stored is not None and stored["score"] == json.loads(record.response)


async def test_rows_of_the_formats_before_012_read_back_identically(repo: PgRepository) -> None:
    """payload_rest as an object and learned as int[] (what 002 to 011 wrote) still read."""
    records = _records([_tx("old-1", DAY), _tx("old-2", DAY + timedelta(minutes=1), "7")])
    await repo.insert_scored(records)
    row = await repo.pool.fetchrow(
        "SELECT payload_rest, learned, learned_packed FROM scored_transactions"
        " WHERE transaction_id = 'old-1'"
    )
    assert row["payload_rest"].startswith("[") and row["learned"] is None
    new = {r.transaction_id: await repo.get(r.transaction_id) for r in records}
    await repo.pool.execute(
        "UPDATE scored_transactions SET learned_packed = NULL, learned = $1::int[],"
        " payload_rest = $2 WHERE transaction_id = 'old-1'",
        codec.unpack_learned(row["learned_packed"]),
        json.dumps(codec.rest_fields(row["payload_rest"]), separators=(",", ":"), sort_keys=True),
    )
    fresh = PgRepository(repo.pool)
    for record in records:
        stored = await fresh.get(record.transaction_id)
        assert stored == new[record.transaction_id]
        assert stored is not None and stored["score"] == json.loads(record.response)
        assert stored["transaction"] == json.loads(record.payload)
    assert (await fresh.find(["old-1"]))["old-1"].digest == records[0].digest
