"""Promotion: the one path by which a challenger becomes champion, by hand or by the policy.

Both the admin route and the learner's automatic policy end here, so every promotion is made
by the pool, written to the audit log and counted the same way. The policy's last decision is
kept with its explanation for ``GET /v1/models``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.core.metrics import Metrics
from app.core.ports import PromotionLog
from models import pool as model_pool

log = logging.getLogger(__name__)


@dataclass
class Promotions:
    pool: model_pool.ModelPool
    log: PromotionLog
    metrics: Metrics
    last_decision: model_pool.PolicyDecision | None = None

    async def promote(self, name: str, reason: str, *, automatic: bool) -> dict[str, Any]:
        """Make ``name`` the champion (``KeyError``/``ValueError`` from the pool if it can't)."""
        return await self._record(self.pool.promote(name, reason, automatic=automatic))

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
        self.metrics.promotions.labels(
            record["from_model"], record["to_model"], str(bool(record["automatic"])).lower()
        ).inc()
        return record


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
