"""Postgres room: the layout of the durable record — feature sets, model lineups, day partitions.

:class:`PgLayout` holds the pool and the caches of what is stored once (a feature set's order,
a lineup's models, the day partitions known to exist); the stores of the record build on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date

import asyncpg

from app.postgres import codec
from features import definitions


class PgLayout:
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
