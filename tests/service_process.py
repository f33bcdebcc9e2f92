"""The service process of the end-to-end tests: `riverguard serve` with one all-scope key."""

from __future__ import annotations

import uuid

from app.tools.service_process import RIVERGUARD, ServiceProcess

KEY = "e2e-key"

__all__ = ["KEY", "RIVERGUARD", "ServiceProcess", "kafka_env", "serve"]


def serve(env: dict[str, str]) -> ServiceProcess:
    """A service with ``env`` on top of the test key (not started)."""
    return ServiceProcess({"RIVERGUARD_API_KEYS": f"{KEY}=score|label|review|admin@e2e", **env})


def kafka_env(redis_url: str, database_url: str, bootstrap: str, prefix: str) -> dict[str, str]:
    """Settings for a service with Kafka workers on topics and a group of its own.

    ``redis_url`` should name a database of the test's own (flushed by the test).
    """
    run = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return {
        "RIVERGUARD_REDIS_URL": redis_url,
        "RIVERGUARD_DATABASE_URL": database_url,
        "RIVERGUARD_KAFKA_BOOTSTRAP": bootstrap,
        "RIVERGUARD_TOPICS__TRANSACTIONS": f"{run}-tx",
        "RIVERGUARD_TOPICS__LABELS": f"{run}-labels",
        "RIVERGUARD_TOPICS__SCORES": f"{run}-scores",
        "RIVERGUARD_TOPICS__DEAD_LETTER": f"{run}-dlq",
        "RIVERGUARD_STREAM__GROUP_ID": run,
    }
