"""The typed state the lifespan builds and the routes read (one object, no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from app.config import Settings
from app.health import Readiness
from app.learning import Learner
from app.metrics import Metrics
from app.repository import Repository
from app.resources import Backends
from app.service import ScoringService
from features import store as feature_store


@dataclass
class AppState:
    settings: Settings
    backends: Backends
    readiness: Readiness
    metrics: Metrics
    repository: Repository
    features: feature_store.FeatureStore
    service: ScoringService
    learner: Learner
    extras: dict[str, Any] = field(default_factory=dict)

    def pool_status(self) -> list[dict[str, Any]]:
        return [_jsonable(row) for row in self.learner.pool.status()]

    def policy_status(self) -> dict[str, Any]:
        """The automatic policy's settings and its last decision, with its explanation."""
        policy = self.learner.pool.policy
        last = self.learner.last_decision
        return {
            "auto_promote": policy.enabled,
            "min_labels": policy.min_labels,
            "margin": policy.margin,
            "confidence": policy.confidence,
            "last_decision": None if last is None else _jsonable(last),
        }

    async def promote(self, name: str, reason: str, *, automatic: bool) -> dict[str, Any]:
        return await self.record_promotion(
            self.learner.pool.promote(name, reason, automatic=automatic)
        )

    async def record_promotion(self, promotion: Any) -> dict[str, Any]:
        """Persist a promotion the pool made (by hand or by the policy) and count it."""
        record: dict[str, Any] = _jsonable(promotion)
        automatic = bool(record["automatic"])
        await self.repository.record_promotion(record)
        self.metrics.promotions.labels(
            record["from_model"], record["to_model"], str(automatic).lower()
        ).inc()
        return record


def _jsonable(value: Any) -> Any:
    """Dataclasses and datetimes of the models package as plain JSON values."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float) and value != value:
        return None
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value


async def get_state(request: Request) -> AppState:
    """The app state (``async``: FastAPI runs a plain ``def`` dependency on a thread pool)."""
    state: AppState = request.app.state.riverguard
    return state
