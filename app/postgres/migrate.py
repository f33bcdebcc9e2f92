"""Ordered SQL migrations under ``app/postgres/migrations``, applied once each, tracked in a table.

Concurrent starters serialise on an advisory lock, so two replicas booting at once apply each
file exactly once.
"""

from __future__ import annotations

from importlib import resources

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection | PoolConnectionProxy

_LOCK_ID = 0x5249564552  # "RIVER"
_TRACK = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def available() -> list[tuple[str, str]]:
    """(version, sql) of every migration file, in order."""
    folder = resources.files("app.postgres").joinpath("migrations")
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name.removesuffix(".sql"), p.read_text(encoding="utf-8")) for p in files]


async def applied(conn: Connection) -> set[str]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    rows = await conn.fetch("SELECT version FROM schema_migrations")
    return {row["version"] for row in rows}


async def pending(conn: Connection) -> list[str]:
    done = await applied(conn)
    return [version for version, _ in available() if version not in done]


async def migrate(conn: Connection) -> list[str]:
    """Apply every pending migration; return the versions applied now."""
    newly: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(_TRACK)
        done = await applied(conn)
        for version, sql in available():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            newly.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return newly
