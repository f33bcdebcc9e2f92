"""Two writers that lock two cards' cases in opposite orders: the scored insert survives.

Scorers group-commit their records concurrently (several flushes in one process, one per
scorer process). The case trigger locks a card's open case, so two batches that alert on the
same two cards can deadlock; PostgreSQL then aborts one statement. Batches insert in card order
(fewer cycles) and a statement chosen as the victim runs again: its records are not lost and no
error reaches the caller. Real PostgreSQL; the other writer holds its locks in an explicit
transaction so the cycle is certain, and waits long before checking for deadlocks so the
service's insert is the one PostgreSQL aborts.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from app.postgres.repository import PgRepository
from tests.app.test_storage import DAY, _records, _tx


async def _waiting_on_a_lock(repo: PgRepository) -> bool:
    waiting = await repo.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE '%scored_transactions%'"
    )
    return bool(waiting)


async def test_a_scored_insert_chosen_as_deadlock_victim_is_retried(repo: PgRepository) -> None:
    on_y, on_x = _records([_tx("t-y", DAY, card="card-y"),
                           _tx("t-x", DAY + timedelta(seconds=1), card="card-x")])  # fmt: skip
    batch = [dataclasses.replace(r, decision="review") for r in (on_y, on_x)]
    async with repo.pool.acquire() as other:
        await other.execute("SET deadlock_timeout = '30s'")
        async with other.transaction():
            await other.execute("INSERT INTO cases (card_id, priority) VALUES ('card-y', 2)")
            insert = asyncio.create_task(repo.insert_scored(batch))
            for _ in range(200):  # until the insert waits for card-y's case (card-x is held)
                if await _waiting_on_a_lock(repo):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the insert never waited for the other writer")
            # the other writer now wants card-x's case, which the insert holds: a cycle
            await other.execute("INSERT INTO cases (card_id, priority) VALUES ('card-x', 2)")
        assert await insert == {"t-y", "t-x"}
    alerts = await repo.pool.fetch(
        "SELECT a.transaction_id, c.card_id FROM case_alerts a JOIN cases c ON c.id = a.case_id"
        " ORDER BY a.transaction_id"
    )
    assert [(r["transaction_id"], r["card_id"]) for r in alerts] == [
        ("t-x", "card-x"), ("t-y", "card-y")]  # fmt: skip
    assert await repo.pool.fetchval("SELECT count(*) FROM cases") == 2
