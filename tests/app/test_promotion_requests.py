"""Promotion requests on the leader, server-free: applied in order, each audited once; a
refusal is settled with its reason; a settlement that fails leaves the champion as it was and
the request pending, so the next sweep applies it (never a champion change without audit)."""

from __future__ import annotations

from typing import Any

import pytest

from app.bootstrap import build_pool
from app.config import ScoringSettings, Settings
from app.core.metrics import Metrics
from app.core.ports import PromotionRequest
from app.core.promotion import Promotions
from tests.app.fakes import MemoryRecords


class MemoryRequests:
    """PromotionRequests in a list; ``fail`` makes the next settlement raise."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.audit: list[dict[str, Any]] = []
        self.fail = False

    async def request(self, to_model: str, reason: str, requested_by: str) -> int:
        self.rows.append({"id": len(self.rows) + 1, "to": to_model, "reason": reason,
                          "by": requested_by, "status": "pending", "outcome": None})  # fmt: skip
        return len(self.rows)

    async def pending(self, limit: int = 100) -> list[PromotionRequest]:
        return [
            PromotionRequest(r["id"], r["to"], r["reason"], r["by"])
            for r in self.rows
            if r["status"] == "pending"
        ][:limit]

    async def settle(
        self, request_id: int, record: dict[str, Any] | None, outcome: str, epoch: int | None
    ) -> bool:
        if self.fail:
            self.fail = False
            raise ConnectionError("database went away")
        row = self.rows[request_id - 1]
        if row["status"] != "pending":
            return False
        row["status"], row["outcome"] = ("refused" if record is None else "applied"), outcome
        if record is not None:
            self.audit.append(record)
        return True

    async def outcome(self, request_id: int) -> tuple[str, str | None] | None:
        row = self.rows[request_id - 1]
        return row["status"], row["outcome"]


def _promotions() -> tuple[Promotions, MemoryRequests]:
    scoring = ScoringSettings(champion="blend", challengers=("logreg", "hat"))
    pool = build_pool(Settings(_env_file=None, scoring=scoring), None)  # type: ignore[call-arg]
    requests = MemoryRequests()
    return Promotions(pool, MemoryRecords(), Metrics(), requests), requests


async def test_requests_are_applied_in_order_and_audited_once() -> None:
    promotions, requests = _promotions()
    first = await promotions.request("logreg", "better AP", "alice")
    again = await promotions.request("logreg", "twice", "bob")
    ghost = await promotions.request("ghost", "typo", "bob")
    assert promotions.pool.champion == "blend"  # recorded, not applied: only the leader does
    assert await promotions.apply_requests(epoch=None) == 1
    assert promotions.pool.champion == "logreg"
    assert [(a["to_model"], a["requested_by"]) for a in requests.audit] == [("logreg", "alice")]
    assert [(r["status"], r["outcome"]) for r in requests.rows] == [
        ("applied", "promoted"), ("refused", "already the champion"), ("refused", "no such model"),
    ]  # fmt: skip
    assert (await promotions.settled(first)).record is not None
    assert (await promotions.settled(again)).outcome == "already the champion"
    assert (await promotions.settled(ghost)).record is None
    assert await promotions.apply_requests(epoch=None) == 0  # nothing pending: nothing again


async def test_a_failed_settlement_changes_no_champion_and_the_next_sweep_applies_it() -> None:
    promotions, requests = _promotions()
    await promotions.request("hat", "drift", "alice")
    requests.fail = True
    with pytest.raises(ConnectionError):
        await promotions.apply_requests(epoch=3)
    assert promotions.pool.champion == "blend" and requests.audit == []
    assert await promotions.apply_requests(epoch=3) == 1
    assert promotions.pool.champion == "hat" and len(requests.audit) == 1
