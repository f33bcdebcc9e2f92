"""Clients of the three backends, opened and closed together (used by the lifespan and CLI)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from app import migrate
from app.config import Settings


class ConfigurationError(RuntimeError):
    """The settings cannot run the service; the message says what to set."""


@dataclass
class Backends:
    redis: aioredis.Redis
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


def redis_client(url: str, max_connections: int) -> aioredis.Redis:
    # A blocking pool with few connections: the default pool showed p99 ≈ 76 ms at 16
    # concurrent requests on 2 cores (RELIABILITY.md); a small blocking pool ≈ 8 ms.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=5, socket_timeout=5
    )
    return aioredis.Redis(connection_pool=pool)


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
    redis = redis_client(redis_url, settings.redis_max_connections)
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
        await db.close()
        await redis.aclose()
