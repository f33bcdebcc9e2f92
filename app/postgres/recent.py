"""Postgres adapter of :class:`app.core.budgets.RecentTraffic`: what was stored lately.

The budget window reads the feature snapshots of the transactions stored since it last
looked, in ``(scored_at, transaction_id)`` order (a BRIN index on ``scored_at`` keeps that
cheap). A batch committed after a later one was read is missed: the window is a sample of
recent traffic, not a ledger, and a few missed rows do not move a quantile.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from app.core.budgets import RecentRow

_FIRST = """
SELECT scored_at, transaction_id, feature_set, features, decision FROM scored_transactions
WHERE scored_at > $1 ORDER BY scored_at DESC, transaction_id DESC LIMIT $2
"""
_AFTER = """
SELECT scored_at, transaction_id, feature_set, features, decision FROM scored_transactions
WHERE scored_at >= $1 AND (scored_at > $1 OR transaction_id > $2)
ORDER BY scored_at, transaction_id LIMIT $3
"""


class PgRecentTraffic:
    def __init__(self, pool: asyncpg.Pool, lookback: timedelta = timedelta(hours=6)) -> None:
        self.pool = pool
        self.lookback = lookback  # how far back a fresh window looks for its first rows
        self._names: dict[str, list[str]] = {}

    async def rows_after(self, after: tuple[datetime, str] | None, limit: int) -> list[RecentRow]:
        if after is None:
            since = await self.pool.fetchval("SELECT now()") - self.lookback
            rows = list(reversed(await self.pool.fetch(_FIRST, since, limit)))
        else:
            rows = await self.pool.fetch(_AFTER, after[0], after[1], limit)
        out = []
        for row in rows:
            names = await self._feature_names(row["feature_set"])
            features = dict(zip(names, (float(v) for v in row["features"]), strict=True))
            out.append(
                RecentRow(row["scored_at"], row["transaction_id"], features, row["decision"])
            )
        return out

    async def _feature_names(self, feature_set: str) -> list[str]:
        known = self._names.get(feature_set)
        if known is None:
            known = list(
                await self.pool.fetchval(
                    "SELECT names FROM feature_sets WHERE id = $1", feature_set
                )
            )
            self._names[feature_set] = known
        return known
