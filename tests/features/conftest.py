"""Fixtures of the feature-store tests: a real Valkey (``redis_url`` from tests/conftest.py),
a fresh key prefix per test, and small transaction builders."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from features import store
from features.config import FeatureConfig


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    connection = store.connect(redis_url)
    try:
        yield connection
    finally:
        await connection.aclose()


@pytest.fixture
def make_store(client: Redis) -> Callable[..., store.RedisFeatureStore]:
    """A store on a key prefix of its own (tests share one server)."""

    def build(**config: object) -> store.RedisFeatureStore:
        prefix = f"t{uuid.uuid4().hex[:10]}"
        return store.RedisFeatureStore(client, FeatureConfig(key_prefix=prefix, **config))  # type: ignore[arg-type]

    return build
