"""Benchmark: what the case trigger (migration 016) adds to storing records.

EXPLAIN ANALYZE of one 20,000-row insert into scored_transactions (5% decided review, 100
cards) on an embedded PostgreSQL, alternately with the trigger enabled and disabled; prints the
statement's server time and the trigger's share of it.

    .venv/bin/python -m bench.case_trigger
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.postgres import migrate
from app.tools.embedded import EmbeddedStack

N = 20_000
INSERT = """
EXPLAIN (ANALYZE, FORMAT JSON)
INSERT INTO scored_transactions (event_time, scored_at, score, lineup, transaction_id, card_id,
  merchant_id, feature_set, feature_status, decision, source, scores, features, payload, digest,
  response, reasons)
SELECT now() - make_interval(secs => g), now(), 0.6, 1, $1 || g, 'card_' || (g % 2000), 'm',
  'fs', 'ok',
  CASE WHEN g % 20 = 0 THEN 'review' ELSE 'approve' END, 'rest', ARRAY[0.6]::float8[],
  ARRAY[1,2,3]::real[], '{}', 'd', '{}', '[{"code": "score_high"}]'
FROM generate_series(1, $2) g
"""


async def one(conn: Any, prefix: str, trigger: bool) -> tuple[float, float]:
    switch = "ENABLE" if trigger else "DISABLE"
    await conn.execute(
        f"ALTER TABLE scored_transactions {switch} TRIGGER scored_transactions_case_alert"
    )
    plan = await conn.fetchval(INSERT, prefix, N)
    p = json.loads(plan)[0]
    trig = sum(t["Time"] for t in p.get("Triggers", []))
    return p["Execution Time"], trig


async def main(url: str) -> None:
    conn = await asyncpg.connect(url)
    await migrate.migrate(conn)
    out = []
    for i, trig in enumerate([False, True, False, True, False, True]):
        out.append((trig, *await one(conn, f"r{i}_", trig)))
    for trig, total, t in out:
        print(f"trigger={trig}: {total:.0f} ms for {N} rows ({1000 * total / N:.1f} us/row),"
              f" of which the trigger {t:.0f} ms")  # fmt: skip
    await conn.close()


if __name__ == "__main__":
    stack = EmbeddedStack()
    try:
        urls = stack.start(kafka=False, redis=False, postgres=True)
        assert urls.database_url is not None
        asyncio.run(main(urls.database_url))
    finally:
        stack.close()
