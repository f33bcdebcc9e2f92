"""Clients of the three backends: one factory each, opened and closed together (lifespan and
CLI), and the readiness probes that check them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from app.config import Settings
from app.core.readiness import Probe, Readiness
from app.postgres import migrate
from features import redis_io
from features import store as feature_store


class ConfigurationError(RuntimeError):
    """The settings cannot run the service; the message says what to set."""


@dataclass
class Backends:
    redis: redis_io.Client
    db: asyncpg.Pool
    producer: AIOKafkaProducer | None


def require(settings: Settings) -> tuple[str, str]:
    redis_url = settings.secret("redis_url")
    database_url = settings.secret("database_url")
    missing = [
        name
        for name, value in (
            ("RIVERGUARD_REDIS_URL", redis_url),
            ("RIVERGUARD_DATABASE_URL", database_url),
        )
        if not value
    ]
    if missing or redis_url is None or database_url is None:
        raise ConfigurationError(
            f"{' and '.join(missing)} must be set (or use `riverguard dev`, which starts "
            "embedded servers for what is not configured)"
        )
    return redis_url, database_url


def redis_client(settings: Settings, url: str) -> redis_io.Client:
    """The feature store's client: standalone (a blocking pool of ``redis_max_connections``)
    or, with ``RIVERGUARD_REDIS_CLUSTER=true``, a Redis Cluster client seeded by ``url``
    (redis-py's cluster pool does not block, so at least 64 connections per node)."""
    if settings.redis_cluster:
        return feature_store.connect_cluster(url, max(64, settings.redis_max_connections))
    return feature_store.connect(url, settings.redis_max_connections)


def kafka_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=2,
        request_timeout_ms=15_000,
        enable_idempotence=False,  # Tansu has no idempotent producer; processing is idempotent
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool release hook: asyncpg always rolls back an open transaction first; beyond that
    there is nothing to reset (no LISTEN, session settings or cursors outside transactions;
    the migration lock is released explicitly), so skip the default reset round trip."""


@contextlib.asynccontextmanager
async def open_backends(
    settings: Settings, *, run_migrations: bool = True
) -> AsyncIterator[Backends]:
    redis_url, database_url = require(settings)
    redis = redis_client(settings, redis_url)
    db = await asyncpg.create_pool(
        database_url,
        min_size=settings.persistence.pool_min,
        max_size=settings.persistence.pool_max,
        reset=_keep_session,
    )
    producer = None
    try:
        if run_migrations:
            async with db.acquire() as conn:
                await migrate.migrate(conn)
        if settings.kafka_bootstrap:
            producer = kafka_producer(settings.kafka_bootstrap)
            await producer.start()
        yield Backends(redis=redis, db=db, producer=producer)
    finally:
        if producer is not None:
            await producer.stop()
        try:
            # close() waits for every connection to come back; one that never does (a leak)
            # would hang the shutdown: say so and cut the connections instead
            async with asyncio.timeout(30):
                await db.close()
        except TimeoutError:
            logging.getLogger(__name__).error("a database connection was never released")
            db.terminate()
        await redis.aclose()


# ---- readiness probes ---------------------------------------------------------------
def install_probes(readiness: Readiness, backends: Backends) -> None:
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
