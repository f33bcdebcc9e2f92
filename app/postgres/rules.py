"""Postgres adapter: decision rules, their audit, and the rows a backtest reads.

:class:`PgRuleStore` implements :class:`app.core.rulebook.RuleStore` (tables of migration 005)
and :class:`app.core.backtest.BacktestSource`. Every change runs in one transaction that
first locks the ``rules_state`` row, so changes are serialised, and bumps its counter with
the change: a process polling the counter never misses a commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from app.core.backtest import BacktestResult, BacktestRow
from app.core.learning import transaction_from_payload
from app.core.rulebook import RuleExists, diff
from app.core.rules import Rule
from app.postgres import codec

_COLUMNS = "id, name, expression, action, reason_code, priority, enabled, version, shadow"
_SHADOW = """
SELECT count(*) AS rows_scanned,
    count(*) FILTER (WHERE hit) AS hits,
    count(*) FILTER (WHERE hit AND i.label_is_fraud IS NOT NULL) AS labelled_hits,
    count(*) FILTER (WHERE hit AND i.label_is_fraud) AS frauds_caught,
    count(*) FILTER (WHERE hit AND t.decision IN ('review', 'decline')) AS model_overlap
FROM (
    SELECT t.*, t.shadow_hits IS NOT NULL AND $1 = ANY(string_to_array(t.shadow_hits, ',')) AS hit
    FROM scored_transactions t WHERE t.event_time >= $2 AND t.event_time < $3
) t
JOIN transaction_ids i ON i.transaction_id = t.transaction_id AND i.event_time = t.event_time
"""
_SHADOW_FIGURES = ("rows_scanned", "hits", "labelled_hits", "frauds_caught", "model_overlap")
_BACKTEST = """
SELECT t.transaction_id, t.card_id, t.merchant_id, t.event_time, t.feature_set, t.features,
    t.payload_rest, t.payload, t.score, t.decision, i.label_is_fraud
FROM scored_transactions t
JOIN transaction_ids i ON i.transaction_id = t.transaction_id AND i.event_time = t.event_time
WHERE t.event_time >= $1 AND t.event_time < $2 AND (t.event_time, t.transaction_id) > ($3, $4)
ORDER BY t.event_time, t.transaction_id
LIMIT $5
"""


def _rule(row: Any) -> Rule:
    return Rule(**dict(row))


class PgRuleStore:
    def __init__(self, pool: asyncpg.Pool, chunk: int = 2_000, page_seconds: float = 30.0) -> None:
        self.pool = pool
        self.chunk = chunk  # rows per backtest page
        self.page_seconds = page_seconds  # a page's query is cancelled after this
        self._feature_sets: dict[str, tuple[str, ...]] = {}

    async def version(self) -> int:
        return int(await self.pool.fetchval("SELECT version FROM rules_state"))

    async def load(self) -> tuple[int, list[Rule]]:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            version = await conn.fetchval("SELECT version FROM rules_state")
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM rules ORDER BY id")  # noqa: S608
        return int(version), [_rule(r) for r in rows]

    async def get(self, rule_id: str) -> Rule | None:
        row = await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM rules WHERE id = $1", rule_id)  # noqa: S608
        return None if row is None else _rule(row)

    async def create(self, rule: Rule, changed_by: str) -> Rule:
        async with self.pool.acquire() as conn, conn.transaction():
            await _lock(conn)
            if await _current(conn, rule.id) is not None:
                raise RuleExists(rule.id)
            return await _write(conn, None, rule, changed_by)

    async def put(self, rule: Rule, changed_by: str, *, must_exist: bool) -> Rule | None:
        async with self.pool.acquire() as conn, conn.transaction():
            await _lock(conn)
            old = await _current(conn, rule.id)
            if old is None and must_exist:
                return None
            if old is not None and old.content() == rule.content():
                return old  # unchanged: no new version, nothing audited
            return await _write(conn, old, rule, changed_by)

    async def delete(self, rule_id: str, changed_by: str) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            await _lock(conn)
            old = await _current(conn, rule_id)
            if old is None:
                return False
            await conn.execute("DELETE FROM rules WHERE id = $1", rule_id)
            await _audit(conn, rule_id, old.version + 1, changed_by, diff(old, None))
            return True

    async def history(self, rule_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT version, changed_at, changed_by, change FROM rule_versions"
            " WHERE rule_id = $1 ORDER BY seq",
            rule_id,
        )
        return [
            {
                "version": r["version"],
                "changed_at": r["changed_at"].isoformat(),
                "changed_by": r["changed_by"],
                "change": orjson.loads(r["change"]),
            }
            for r in rows
        ]

    # ---- backtest ------------------------------------------------------------------------
    async def backtest_pages(
        self, since: datetime, until: datetime, limit: int
    ) -> AsyncIterator[Sequence[Any]]:
        """Keyset pages by (event_time, transaction_id): no long-lived cursor or snapshot."""
        after: tuple[datetime, str] = (since, "")
        left = limit
        while left > 0:
            rows = await self.pool.fetch(
                _BACKTEST, since, until, *after, min(self.chunk, left), timeout=self.page_seconds
            )
            for feature_set in {r["feature_set"] for r in rows}:
                await self._feature_names(feature_set)  # cached for backtest_row
            yield rows
            left -= len(rows)
            if len(rows) < self.chunk:
                return
            after = (rows[-1]["event_time"], rows[-1]["transaction_id"])

    async def shadow_stats(self, rule_id: str, since: datetime, until: datetime) -> BacktestResult:
        row = await self.pool.fetchrow(_SHADOW, rule_id, since, until, timeout=self.page_seconds)
        days = await self.pool.fetch(
            "SELECT to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*) AS n"
            " FROM scored_transactions WHERE event_time >= $2 AND event_time < $3"
            " AND $1 = ANY(string_to_array(shadow_hits, ',')) GROUP BY 1",
            rule_id,
            since,
            until,
            timeout=self.page_seconds,
        )
        assert row is not None
        result = BacktestResult(since, until, hits_per_day={d["day"]: int(d["n"]) for d in days})
        for name in _SHADOW_FIGURES:
            setattr(result, name, int(row[name]))
        return result

    def backtest_row(self, r: Any) -> BacktestRow:
        payload = r["payload"] or codec.rebuild_payload(
            r["payload_rest"], r["transaction_id"], r["card_id"], r["merchant_id"], r["event_time"]
        )
        names = self._feature_sets[r["feature_set"]]
        return BacktestRow(
            transaction=transaction_from_payload(orjson.loads(payload)),
            features=dict(zip(names, (float(v) for v in r["features"]), strict=True)),
            score=float(r["score"]),
            decision=r["decision"],
            label=r["label_is_fraud"],
        )

    async def _feature_names(self, feature_set: str) -> tuple[str, ...]:
        names = self._feature_sets.get(feature_set)
        if names is None:
            row = await self.pool.fetchval(
                "SELECT names FROM feature_sets WHERE id = $1", feature_set
            )
            if row is None:
                raise codec.UnknownFeatureSet(f"feature set {feature_set!r} has no stored order")
            names = self._feature_sets[feature_set] = tuple(row)
        return names


async def _lock(conn: Any) -> None:
    await conn.execute("SELECT version FROM rules_state FOR UPDATE")


async def _current(conn: Any, rule_id: str) -> Rule | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM rules WHERE id = $1", rule_id)  # noqa: S608
    return None if row is None else _rule(row)


async def _write(conn: Any, old: Rule | None, rule: Rule, changed_by: str) -> Rule:
    """Insert or replace ``rule`` as the next version (after a deletion too), audited."""
    last = await conn.fetchval(
        "SELECT coalesce(max(version), 0) FROM rule_versions WHERE rule_id = $1", rule.id
    )
    version = max(int(last), 0 if old is None else old.version) + 1
    await conn.execute(
        "INSERT INTO rules (id, name, expression, action, reason_code, priority, enabled,"
        " version, shadow) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO"
        " UPDATE SET name = $2, expression = $3, action = $4, reason_code = $5, priority = $6,"
        " enabled = $7, version = $8, shadow = $9, updated_at = now()",
        rule.id, rule.name, rule.expression, rule.action, rule.reason_code, rule.priority,
        rule.enabled, version, rule.shadow,
    )  # fmt: skip
    await _audit(conn, rule.id, version, changed_by, diff(old, rule))
    return Rule(**{**rule.content(), "version": version})


async def _audit(
    conn: Any, rule_id: str, version: int, changed_by: str, change: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO rule_versions (rule_id, version, changed_by, change)"
        " VALUES ($1, $2, $3, $4::jsonb)",
        rule_id,
        version,
        changed_by,
        codec.dumps(change),
    )
    await conn.execute("UPDATE rules_state SET version = version + 1")
