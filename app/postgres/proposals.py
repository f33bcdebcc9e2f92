"""Postgres room: :class:`PgProposalStore`, four-eyes proposals (migration 017)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from app.core.proposals import Status

_COLUMNS = (
    "id, kind, target, payload, before, backtest, proposed_by, proposed_at, status,"
    " decided_by, decided_at, outcome"
)
# pending → approved | rejected; approved → failed (applying it failed)
_FROM = {"approved": "pending", "rejected": "pending", "failed": "approved"}


def _row(row: Any) -> dict[str, Any]:
    out = dict(row)
    for name in ("payload", "before", "backtest"):
        out[name] = None if row[name] is None else json.loads(row[name])
    return out


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


class PgProposalStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def add(self, proposal: dict[str, Any]) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            "INSERT INTO proposals (kind, target, payload, before, backtest, proposed_by,"  # noqa: S608
            f" proposed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}",
            proposal["kind"], proposal["target"], _json(proposal["payload"]),
            _json(proposal["before"]), _json(proposal["backtest"]), proposal["proposed_by"],
            proposal["proposed_at"],
        )  # fmt: skip
        return _row(row)

    async def get(self, proposal_id: int) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM proposals WHERE id = $1",  # noqa: S608 (constants)
            proposal_id,
        )
        return None if row is None else _row(row)

    async def find(self, status: Status | None, limit: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM proposals"  # noqa: S608 (constants)
            " WHERE $1::text IS NULL OR status = $1 ORDER BY id DESC LIMIT $2",
            status,
            limit,
        )
        return [_row(r) for r in rows]

    async def decide(
        self, proposal_id: int, status: Status, who: str, now: datetime, outcome: str | None
    ) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "UPDATE proposals SET status = $2, decided_by = $3, decided_at = $4, outcome = $5"  # noqa: S608
            f" WHERE id = $1 AND status = $6 RETURNING {_COLUMNS}",
            proposal_id, status, who, now, outcome, _FROM[status],
        )  # fmt: skip
        return None if row is None else _row(row)
