"""Readiness probes for Redis, Postgres (and its migrations) and Kafka."""

from __future__ import annotations

from app import migrate
from app.health import Probe, Readiness
from app.resources import Backends


def install(readiness: Readiness, backends: Backends) -> None:
    readiness.probes["redis"] = _redis(backends)
    readiness.probes["postgres"] = _postgres(backends)
    if backends.producer is not None:
        readiness.probes["kafka"] = _kafka(backends)


def _redis(backends: Backends) -> Probe:
    async def probe() -> str | None:
        await backends.redis.ping()
        return None

    return probe


def _postgres(backends: Backends) -> Probe:
    async def probe() -> str | None:
        async with backends.db.acquire(timeout=2) as conn:
            missing = await migrate.pending(conn)
        return f"migrations pending: {', '.join(missing)}" if missing else None

    return probe


def _kafka(backends: Backends) -> Probe:
    async def probe() -> str | None:
        assert backends.producer is not None
        metadata = await backends.producer.client.fetch_all_metadata()
        return None if metadata.brokers() else "no brokers in metadata"

    return probe
