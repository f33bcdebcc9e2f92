"""Postgres room: model snapshots (checkpoints) and the promotion audit log."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from app.postgres import codec
from app.postgres.leadership import check_epoch


class PgSnapshots:
    pool: asyncpg.Pool

    async def save_snapshot(
        self,
        name: str,
        version: str,
        learn_seq: int,
        feature_set: str,
        metadata: dict[str, Any],
        blob: bytes,
        epoch: int | None = None,
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if epoch is not None:
                await check_epoch(conn, epoch)
            await conn.execute(
                "INSERT INTO model_snapshots (model_name, model_version, learn_seq, feature_set,"
                " metadata, blob) VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
                name,
                version,
                learn_seq,
                feature_set,
                codec.dumps(metadata),
                blob,
            )
            # keep the three newest per model
            await conn.execute(
                "DELETE FROM model_snapshots WHERE model_name = $1 AND id NOT IN (SELECT id FROM"
                " model_snapshots WHERE model_name = $1 ORDER BY id DESC LIMIT 3)",
                name,
            )

    async def latest_snapshot(self, name: str) -> tuple[int, bytes] | None:
        row = await self.pool.fetchrow(
            "SELECT learn_seq, blob FROM model_snapshots WHERE model_name = $1"
            " ORDER BY id DESC LIMIT 1",
            name,
        )
        return None if row is None else (row["learn_seq"], bytes(row["blob"]))

    async def record_promotion(self, record: dict[str, Any]) -> None:
        await self.pool.execute(
            "INSERT INTO promotions (from_model, to_model, reason, automatic, record)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            record["from_model"],
            record["to_model"],
            record["reason"],
            bool(record.get("automatic", False)),
            codec.dumps(record),
        )

    async def promotions(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT record FROM promotions ORDER BY id")
        return [json.loads(r["record"]) for r in rows]

    async def current_champion(self) -> str | None:
        name: str | None = await self.pool.fetchval(
            "SELECT to_model FROM promotions ORDER BY id DESC LIMIT 1"
        )
        return name
