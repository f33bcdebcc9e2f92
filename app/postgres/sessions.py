"""Postgres room: :class:`PgSessionStore`, the console's server-side sessions (migration 013)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from app.core.sessions import SessionRecord


class PgSessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def open(self, record: SessionRecord, now: datetime) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM console_sessions WHERE expires_at <= $1", now)
            await conn.execute(
                "INSERT INTO console_sessions (id_hash, fingerprint, csrf, expires_at)"
                " VALUES ($1, $2, $3, $4)",
                record.id_hash,
                record.fingerprint,
                record.csrf,
                record.expires_at,
            )

    async def find(self, hashed: bytes, now: datetime) -> SessionRecord | None:
        row = await self.pool.fetchrow(
            "SELECT fingerprint, csrf, expires_at FROM console_sessions"
            " WHERE id_hash = $1 AND expires_at > $2",
            hashed,
            now,
        )
        if row is None:
            return None
        return SessionRecord(hashed, row["fingerprint"], row["csrf"], row["expires_at"])

    async def end(self, hashed: bytes) -> None:
        await self.pool.execute("DELETE FROM console_sessions WHERE id_hash = $1", hashed)
