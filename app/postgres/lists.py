"""Postgres room: :class:`PgListStore`, the durable allow / block / watch lists (migration 006).

Every change bumps ``list_version`` in its own transaction (the row lock orders writers), so a
process that saw version *n* has seen every change committed up to *n*.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from app.core.lists import DuplicateEntry, Entity, Kind, ListEntry, ListQuery

_COLUMNS = (
    "id, entity, value, kind, reason, expires_at, created_at, created_by, removed_at, removed_by"
)
_BUMP = "UPDATE list_version SET version = version + 1"
_INSERT = (
    "INSERT INTO list_entries (entity, value, kind, reason, expires_at, created_at, created_by)"  # noqa: S608
    f" VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING {_COLUMNS}"
)
_REMOVE = (
    "UPDATE list_entries SET removed_at = $4, removed_by = $5"  # noqa: S608 (constants)
    " WHERE entity = $1 AND value = $2 AND kind = $3 AND removed_at IS NULL"
    f" RETURNING {_COLUMNS}"
)


_EXPIRE_TWIN = (
    "UPDATE list_entries SET removed_at = $4, removed_by = $5"
    " WHERE entity = $1 AND value = $2 AND kind = $3 AND removed_at IS NULL"
    " AND expires_at <= $4"
)


def _twin(e: ListEntry) -> tuple[Any, ...]:
    return (e.entity, e.value, e.kind, e.created_at, e.created_by)


def _values(e: ListEntry) -> tuple[Any, ...]:
    return (e.entity, e.value, e.kind, e.reason, e.expires_at, e.created_at, e.created_by)


def _entry(row: Any) -> ListEntry:
    return ListEntry(
        id=row["id"],
        entity=row["entity"],
        value=row["value"],
        kind=row["kind"],
        reason=row["reason"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        removed_at=row["removed_at"],
        removed_by=row["removed_by"],
    )


class PgListStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def version(self) -> int:
        return int(await self.pool.fetchval("SELECT version FROM list_version"))

    async def snapshot(self) -> tuple[list[ListEntry], int]:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            version = await conn.fetchval("SELECT version FROM list_version")
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM list_entries WHERE removed_at IS NULL"  # noqa: S608
            )
        return [_entry(r) for r in rows], int(version)

    async def add(self, entry: ListEntry) -> ListEntry:
        async with self.pool.acquire() as conn, conn.transaction():
            # an expired twin still holds the (entity, value, kind) slot: it goes first
            await conn.execute(
                "UPDATE list_entries SET removed_at = $4, removed_by = $5"
                " WHERE entity = $1 AND value = $2 AND kind = $3 AND removed_at IS NULL"
                " AND expires_at <= $4",
                entry.entity,
                entry.value,
                entry.kind,
                entry.created_at,
                entry.created_by,
            )
            row = await conn.fetchrow(
                _INSERT,
                entry.entity,
                entry.value,
                entry.kind,
                entry.reason,
                entry.expires_at,
                entry.created_at,
                entry.created_by,
            )
            if row is None:
                raise DuplicateEntry(f"an active {entry.kind} entry for this {entry.entity}")
            await conn.execute(_BUMP)
        return _entry(row)

    async def add_many(self, entries: Sequence[ListEntry]) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            for position, entry in enumerate(entries):
                await conn.execute(_EXPIRE_TWIN, *_twin(entry))
                row = await conn.fetchrow(_INSERT, *_values(entry))
                if row is None:  # raising rolls every earlier row of the file back
                    raise DuplicateEntry(str(position))
            await conn.execute(_BUMP)
        return len(entries)

    async def remove(
        self, entity: Entity, kind: Kind, value: str, by: str, at: datetime
    ) -> ListEntry | None:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _REMOVE,
                entity,
                value,
                kind,
                at,
                by,
            )
            if row is None:
                return None
            await conn.execute(_BUMP)
        return _entry(row)

    async def search(self, query: ListQuery, now: datetime) -> list[ListEntry]:
        conditions = ["id > $1"]
        args: list[Any] = [query.after]

        def bind(sql: str, value: Any) -> None:
            args.append(value)
            conditions.append(sql.replace("?", f"${len(args)}"))

        if query.entity is not None:
            bind("entity = ?", query.entity)
        if query.kind is not None:
            bind("kind = ?", query.kind)
        if query.prefix:
            # LIKE with the wildcards escaped: it can use the text_pattern_ops index
            escaped = query.prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            bind("value LIKE ? ESCAPE '\\'", escaped + "%")
        if not query.include_removed:
            conditions.append("removed_at IS NULL")
        if not query.include_expired:
            bind("(expires_at IS NULL OR expires_at > ?)", now)
        args.append(query.limit)
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM list_entries WHERE {' AND '.join(conditions)}"  # noqa: S608 (placeholders only)
            f" ORDER BY id LIMIT ${len(args)}",
            *args,
        )
        return [_entry(r) for r in rows]
