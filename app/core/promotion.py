"""Promotion: the one path by which a challenger becomes champion, by hand or by the policy.

Only the leading learner changes the champion: a scorer's pool is replaced by the next bundle,
so a promotion made there would be undone within seconds. The admin route, on any process,
records a durable *request*; the leader applies pending requests in order on its loop (each
sweep, and at once when the request was made on the leader itself), writes the audit row in
the same fenced transaction, and ships the new champion in its next bundle. The automatic
policy runs on the leader too. Every promotion is made by the pool, audited and counted the
same way. The policy's last decision is kept with its explanation for ``GET /v1/models``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.core.metrics import Metrics
from app.core.ports import PromotionLog, PromotionRequest, PromotionRequests
from models import pool as model_pool

log = logging.getLogger(__name__)
_REMEMBERED = 100  # settled requests kept for a waiter that registers after the settlement


@dataclass(frozen=True)
class Settled:
    """How the leader settled a request: the audit record, or why it refused."""

    request_id: int
    record: dict[str, Any] | None
    outcome: str  # "promoted", "already the champion", "no such model"


@dataclass
class Promotions:
    pool: model_pool.ModelPool
    log: PromotionLog
    metrics: Metrics
    requests: PromotionRequests | None = None
    last_decision: model_pool.PolicyDecision | None = None
    _settled: dict[int, Settled] = field(default_factory=dict)
    _waiting: dict[int, asyncio.Future[Settled]] = field(default_factory=dict)

    async def request(self, name: str, reason: str, requested_by: str) -> int:
        """Record a promotion request durably (any process); the leader applies it."""
        assert self.requests is not None
        return await self.requests.request(name, reason, requested_by)

    async def settled(self, request_id: int) -> Settled:
        """The settlement of a request this process leads for (the caller bounds the wait)."""
        if request_id in self._settled:
            return self._settled[request_id]
        future = self._waiting.setdefault(request_id, asyncio.get_running_loop().create_future())
        try:
            return await future
        finally:
            self._waiting.pop(request_id, None)

    async def apply_requests(self, epoch: int | None) -> int:
        """The leader: apply pending requests in order, each audited once; how many promoted.

        ``epoch`` fences the settlement (None: a single process without leadership).
        """
        if self.requests is None:
            return 0
        promoted = 0
        for pending in await self.requests.pending():
            settled = await self._apply(pending, epoch)
            promoted += settled.record is not None
            self._remember(settled)
        return promoted

    async def _apply(self, pending: PromotionRequest, epoch: int | None) -> Settled:
        assert self.requests is not None
        try:
            promotion = self.pool.promote(pending.to_model, pending.reason, automatic=False)
        except model_pool.UnknownModel:
            return await self._refuse(pending, "no such model", epoch)
        except model_pool.AlreadyChampion:
            return await self._refuse(pending, "already the champion", epoch)
        record: dict[str, Any] = {**jsonable(promotion), "requested_by": pending.requested_by}
        try:
            written = await self.requests.settle(pending.id, record, "promoted", epoch)
        except BaseException:
            written = False
            raise
        finally:
            if not written:  # no audit row, no promotion: the request stays (or was) settled
                self.pool.champion = promotion.from_model
        if not written:
            return Settled(pending.id, None, "settled before")
        self._count(record)
        log.info("promoted %s (request %d): %s", record["to_model"], pending.id, pending.reason)
        return Settled(pending.id, record, "promoted")

    async def _refuse(self, pending: PromotionRequest, why: str, epoch: int | None) -> Settled:
        assert self.requests is not None
        await self.requests.settle(pending.id, None, why, epoch)
        log.info("promotion request %d of %s refused: %s", pending.id, pending.to_model, why)
        return Settled(pending.id, None, why)

    def _remember(self, settled: Settled) -> None:
        self._settled[settled.request_id] = settled
        while len(self._settled) > _REMEMBERED:
            del self._settled[next(iter(self._settled))]
        waiting = self._waiting.pop(settled.request_id, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(settled)

    async def apply_policy(self, now: datetime | None = None) -> model_pool.PolicyDecision:
        """Decide (and explain) whether a challenger replaces the champion; apply it if so."""
        decision = self.pool.evaluate_policy(now or datetime.now(UTC))
        self.last_decision = decision
        log.info("promotion policy: %s", decision.explanation)
        if decision.promote and decision.challenger is not None:
            await self._record(
                self.pool.promote(
                    decision.challenger, decision.explanation, automatic=True, at=decision.at
                )
            )
        return decision

    def models(self) -> list[dict[str, Any]]:
        """Each model's role, version and rolling quality, as JSON values."""
        return [jsonable(row) for row in self.pool.status()]

    def policy(self) -> dict[str, Any]:
        """The automatic policy's settings and its last decision, with its explanation."""
        policy = self.pool.policy
        last = self.last_decision
        return {
            "auto_promote": policy.enabled,
            "min_labels": policy.min_labels,
            "margin": policy.margin,
            "confidence": policy.confidence,
            "last_decision": None if last is None else jsonable(last),
        }

    async def _record(self, promotion: model_pool.PromotionRecord) -> dict[str, Any]:
        record: dict[str, Any] = jsonable(promotion)
        await self.log.record_promotion(record)
        self._count(record)
        return record

    def _count(self, record: dict[str, Any]) -> None:
        self.metrics.promotions.labels(
            record["from_model"], record["to_model"], str(bool(record["automatic"])).lower()
        ).inc()


def jsonable(value: Any) -> Any:
    """Dataclasses, datetimes and numpy scalars of the models package as plain JSON values."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float) and value != value:
        return None
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return jsonable(value.item())
    return value
