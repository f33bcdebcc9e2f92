"""Benchmark: bytes on disk per stored transaction and per label (Postgres, the durable record).

A seeded simulator stream goes through the service's own record path: the brute-force feature
reference (the features the online store computes), the default model pool scoring, learning
each label as it arrives (so decisions and their reasons look like a running service's), and
:meth:`app.core.scoring.Scorer.record` building what is stored. The records and labels are
written through :class:`app.postgres.repository.PgRepository` into a fresh database on an
embedded PostgreSQL (loopback, its own data directory), then measured with
``pg_total_relation_size`` (heap + TOAST + maps + indexes, summed over partitions) after a
``VACUUM`` (what autovacuum leaves a live database with). Prints markdown.

    .venv/bin/python -m bench.storage [--count 20000] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.config import ScoringSettings, Settings
from app.core.metrics import Metrics
from app.core.ports import LabelEntry, ScoredRecord
from app.core.scoring import Scorer, digest
from app.postgres import migrate, sizes
from app.postgres.repository import PgRepository
from features import definitions
from features.reference import ReferenceFeatures
from features.schema import Label, Transaction, decode_label, decode_transaction
from simulator.config import SimConfig
from simulator.generate import generate

#: Scored 40 ms after its event time (the stored scored_at; it only matters for its size).
SCORING_DELAY = timedelta(milliseconds=40)


@dataclass(frozen=True)
class Workload:
    records: list[ScoredRecord]
    labels: list[LabelEntry]


def workload(count: int, seed: int = 7) -> Workload:
    """``count`` scored transactions of a seeded stream and the labels that arrived for them."""
    from app.bootstrap import build_pool  # the service's pool, as configured by default

    settings = Settings(_env_file=None, scoring=ScoringSettings())  # type: ignore[call-arg]
    pool = build_pool(settings, None)
    scorer = Scorer(pool, Metrics(), definitions.FEATURE_SET_ID)
    reference = ReferenceFeatures()
    cards = max(200, count // 10)
    # long enough for the stored transactions' labels to arrive (most within two weeks)
    config = SimConfig(seed=seed, cards=cards, days=count / (cards * 1.6) + 14)
    records: list[ScoredRecord] = []
    by_id: dict[str, tuple[Transaction, ScoredRecord]] = {}
    labels: list[LabelEntry] = []
    for item in generate(config):
        if item.kind == "transaction":
            if len(records) >= count:
                continue  # keep reading: labels of the stored transactions still arrive
            tx = decode_transaction(orjson.dumps(item.data), now=item.event_time + SCORING_DELAY)
            result = reference.transaction(tx)
            if result.status == "late":
                continue
            payload = tx.canonical_json()
            record, _ = scorer.record(
                tx, payload, digest(payload), result, "kafka", tx.timestamp + SCORING_DELAY
            )
            records.append(record)
            by_id[tx.transaction_id] = (tx, record)
        else:
            label = decode_label(orjson.dumps(item.data), now=item.event_time + SCORING_DELAY)
            known = by_id.pop(label.transaction_id, None)
            if known is None:
                continue
            tx, record = known
            reference.label(label, tx)
            scored = {s["name"]: float(s["score"]) for s in record.scores}
            pool.learn(record.features, label.is_fraud, scored)
            labels.append(
                LabelEntry(
                    label.transaction_id,
                    label.is_fraud,
                    label.labeled_at,
                    label.source,
                    "learned",
                    learn=True,
                )
            )
    return Workload(records, labels)


def _label(entry: LabelEntry) -> Label:
    return Label(
        transaction_id=entry.transaction_id, is_fraud=entry.is_fraud,
        labeled_at=entry.labeled_at, source=entry.source,  # type: ignore[arg-type]
    )  # fmt: skip


async def store(database_url: str, work: Workload, batch: int = 256) -> None:
    """Write the workload through the repository, as the service does (group-committed)."""
    db = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with db.acquire() as conn:
            await migrate.migrate(conn)
        repository = PgRepository(db)
        for start in range(0, len(work.records), batch):
            await repository.insert_scored(work.records[start : start + batch])
        for start in range(0, len(work.labels), batch):
            chunk = work.labels[start : start + batch]
            seqs = await repository.receive_labels([_label(e) for e in chunk])
            await repository.settle_labels(list(zip(seqs, chunk, strict=True)), epoch=0)
        async with db.acquire() as conn:
            await conn.execute("VACUUM ANALYZE")
    finally:
        await db.close()


async def measure(database_url: str) -> tuple[list[sizes.RelationSize], list[sizes.RelationSize]]:
    conn = await asyncpg.connect(database_url)
    try:
        return (
            await sizes.sizes(conn, sizes.TRANSACTION_RELATIONS),
            await sizes.sizes(conn, sizes.LABEL_RELATIONS),
        )
    finally:
        await conn.close()


# each partitioned index's size over its partitions (a partition's own index inherits from it)
_INDEXES = """
SELECT p.relname AS name, sum(pg_relation_size(c.oid)) AS bytes, count(*) AS partitions
FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_class p ON p.oid = h.inhparent
WHERE p.relkind = 'I' GROUP BY p.relname ORDER BY 2 DESC
"""


def table(title: str, per: str, count: int, rows: Sequence[sizes.RelationSize]) -> list[str]:
    out = [
        f"| {title} | table + TOAST B | indexes B | total B | B per {per} |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r.name} | {r.table_bytes:,} | {r.index_bytes:,} | {r.total_bytes:,}"
            f" | {r.total_bytes / max(count, 1):,.0f} |"
        )
    total = sum(r.total_bytes for r in rows)
    out.append(f"| **all** | | | {total:,} | **{total / max(count, 1):,.0f}** |")
    return out


async def run(count: int, seed: int) -> None:
    from app.tools.embedded import EmbeddedStack

    started = time.perf_counter()
    work = workload(count, seed)
    built = time.perf_counter() - started
    with EmbeddedStack(fast_postgres=True) as stack:
        urls = stack.start(kafka=False, redis=False)
        assert urls.database_url is not None
        admin = await asyncpg.connect(urls.database_url)
        await admin.execute('CREATE DATABASE "bench_storage"')
        await admin.close()
        url = urls.database_url.rsplit("/", 1)[0] + "/bench_storage"
        await store(url, work)
        transactions, labels = await measure(url)
        conn = await asyncpg.connect(url)
        version = await conn.fetchval("SHOW server_version")
        migrations = sorted(await migrate.applied(conn))
        indexes = await conn.fetch(_INDEXES)
        await conn.close()
    decisions: dict[str, int] = {}
    for r in work.records:
        decisions[r.decision] = decisions.get(r.decision, 0) + 1
    print("## Storage (bench/storage.py)\n")
    print(f"Command: `.venv/bin/python -m bench.storage --count {count} --seed {seed}`\n")
    print(
        f"PostgreSQL {version}, migrations {', '.join(migrations)}; {len(work.records):,}"
        f" scored transactions of a seeded simulator stream (seed {seed}; decisions"
        f" {', '.join(f'{k} {v:,}' for k, v in sorted(decisions.items()))}), {len(work.labels):,}"
        f" labels learned; sizes after VACUUM; workload built in {built:.0f} s.\n"
    )
    print("\n".join(table("transactions", "transaction", len(work.records), transactions)))
    print()
    print("\n".join(table("labels", "label", len(work.labels), labels)))
    partitions = max((int(r["partitions"]) for r in indexes), default=0)
    print(f"\nIndexes of scored_transactions, summed over its {partitions} partitions:\n")
    print("| index | B | B per transaction |\n|---|---|---|")
    for r in indexes:
        size = int(r["bytes"])
        print(f"| {r['name']} | {size:,} | {size / max(len(work.records), 1):,.0f} |")
    print(f"\nat: {datetime.now().astimezone().isoformat(timespec='minutes')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(run(args.count, args.seed))


if __name__ == "__main__":
    main()
