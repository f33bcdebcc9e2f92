"""Benchmark: what the decision outbox costs per transaction (migration 018).

The seeded workload of :mod:`bench.storage` (real scored records) is written group-committed
(256 a statement) twice into fresh databases of one embedded PostgreSQL: once with the
scored-record statement as it was before the outbox (the ``outboxed`` step cut out: the
in-run baseline), once as shipped. For each: WAL bytes and Postgres backend CPU (utime + stime
of the one backend, from /proc) and this process's CPU (the service's side: encoding the
rows, building the events) per transaction. Then the relay drains the outbox (publish
discarded: the broker's side is not Postgres's cost) and the same figures are taken per
relayed row, with the outbox's size while the rows waited. Prints markdown.

    .venv/bin/python -m bench.outbox [--count 5000] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.core.outbox import Event
from app.postgres import migrate, scored
from app.postgres.outbox import PgOutbox
from app.postgres.repository import PgRepository
from bench.storage import workload

_TICK = os.sysconf("SC_CLK_TCK")
_BEFORE = re.sub(r"\), outboxed AS \(.*?FROM stored\n\)", ")", scored._INSERT_SCORED, flags=re.S)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


async def _discard(events: Sequence[Event]) -> None:
    return None


async def _figures(db: asyncpg.Pool, step: object) -> tuple[float, float, float]:
    """(WAL bytes, backend CPU s, this process's CPU s) of ``await step()`` on the pool's one
    backend."""
    pid = await db.fetchval("SELECT pg_backend_pid()")
    start = await db.fetchval("SELECT pg_current_wal_lsn()")
    cpu, own = _cpu_s(pid), time.process_time()
    await step()  # type: ignore[operator]
    cpu, own = _cpu_s(pid) - cpu, time.process_time() - own
    wal = await db.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", start)
    return float(wal), cpu, own


async def one(url: str, records: list, outbox: bool) -> dict[str, float]:
    scored._INSERT_SCORED = _SHIPPED if outbox else _BEFORE
    db = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        async with db.acquire() as conn:
            await migrate.migrate(conn)
        repository = PgRepository(db)
        await repository.insert_scored(records[:256])  # partitions and lineups, not measured
        rest = records[256:]

        async def write() -> None:
            for start in range(0, len(rest), 256):
                await repository.insert_scored(rest[start : start + 256])

        wal, cpu, own = await _figures(db, write)
        n = len(rest)
        out = {"wal": wal / n, "cpu_us": cpu * 1e6 / n, "own_us": own * 1e6 / n}
        if outbox:
            await db.execute("VACUUM ANALYZE decision_outbox")
            size = await db.fetchval("SELECT pg_total_relation_size('decision_outbox')")
            waiting = await db.fetchval("SELECT count(*) FROM decision_outbox")
            out["waiting_b"] = size / waiting
            store = PgOutbox(db)

            async def relay() -> None:
                while await store.relay(500, _discard, ()):
                    pass

            wal, cpu, own = await _figures(db, relay)
            out |= {
                "relay_wal": wal / waiting,
                "relay_cpu_us": cpu * 1e6 / waiting,
                "relay_own_us": own * 1e6 / waiting,
            }
        return out
    finally:
        await db.close()


_SHIPPED = scored._INSERT_SCORED


async def run(count: int, seed: int) -> None:
    from app.tools.embedded import EmbeddedStack

    assert _BEFORE != _SHIPPED, "the outbox step was not found in the statement"
    records = workload(count, seed).records
    with EmbeddedStack(fast_postgres=True) as stack:
        urls = stack.start(kafka=False, redis=False)
        assert urls.database_url is not None
        admin = await asyncpg.connect(urls.database_url)
        for name in ("bench_before", "bench_outbox"):
            await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        base = urls.database_url.rsplit("/", 1)[0]
        before = await one(f"{base}/bench_before", records, outbox=False)
        after = await one(f"{base}/bench_outbox", records, outbox=True)
    print("## Decision outbox (bench/outbox.py)\n")
    print(f"Command: `.venv/bin/python -m bench.outbox --count {count} --seed {seed}`\n")
    print("| per transaction | before the outbox | with the outbox | relay (per row) |")
    print("|---|---|---|---|")
    print(f"| WAL bytes | {before['wal']:,.0f} | {after['wal']:,.0f} | {after['relay_wal']:,.0f} |")
    print(
        f"| Postgres backend CPU µs | {before['cpu_us']:.1f} | {after['cpu_us']:.1f}"
        f" | {after['relay_cpu_us']:.1f} |"
    )
    print(
        f"| service process CPU µs | {before['own_us']:.1f} | {after['own_us']:.1f}"
        f" | {after['relay_own_us']:.1f} |"
    )
    print(f"\nOutbox size while rows wait: {after['waiting_b']:.0f} B a row (0 once relayed).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(run(args.count, args.seed))


if __name__ == "__main__":
    main()
