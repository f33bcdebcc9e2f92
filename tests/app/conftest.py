"""An application over the real embedded servers, with a fresh database per test; the
settings, keys and small helpers its tests share."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import redis
from fastapi.testclient import TestClient

from app.config import DecisionSettings, ScoringSettings, Settings
from app.main import create_app
from app.postgres import migrate
from app.postgres.repository import PgRepository

ADMIN = {"X-API-Key": "admin-key"}
SCORER = {"X-API-Key": "score-key"}
LABELER = {"X-API-Key": "label-key"}
KEYS = "admin-key=score|label|admin,score-key=score,label-key=label"
#: The analysts' tests: the admin (named ops), the scorer, and two analysts, alice and bob.
ANALYST_KEYS = (
    "admin-key=score|label|admin@ops,score-key=score,alice-key=review@alice,bob-key=review@bob"
)
ALICE = {"X-API-Key": "alice-key"}
BOB = {"X-API-Key": "bob-key"}
#: Every transaction is decided review: no warm-up, review at 0, decline only at 1.
REVIEW_ALL = ScoringSettings(
    warmup_labels=0, warmup_frauds=0, review_threshold=0.0, decline_threshold=1.0
)
_ids = itertools.count(1)


def settings_for(
    database_url: str, redis_url: str, *, api_keys: str = KEYS, **extra: Any
) -> Settings:
    """A service on these servers without Kafka; ``extra``: more settings groups."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        api_keys=api_keys,
        kafka_bootstrap=None,
        **extra,
    )


def analyst_settings(database_url: str, redis_url: str, **extra: Any) -> Settings:
    """The analysts' keys; every transaction decided review unless ``scoring`` says else."""
    extra.setdefault("scoring", REVIEW_ALL)
    return settings_for(database_url, redis_url, api_keys=ANALYST_KEYS, **extra)


def four_eyes_settings(database_url: str, redis_url: str, api_keys: str, **extra: Any) -> Settings:
    """No warm-up, and four-eyes on: a rule or list change waits for a second key."""
    return settings_for(
        database_url,
        redis_url,
        api_keys=api_keys,
        scoring=ScoringSettings(warmup_labels=0, warmup_frauds=0),
        decisions=DecisionSettings(four_eyes=True),
        **extra,
    )


@pytest.fixture
def api_redis_url(redis_url: str) -> Iterator[str]:
    """Database 2 of the session Valkey, flushed before and after the test."""
    url = redis_url.rsplit("/", 1)[0] + "/2"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def client(fresh_database: str, api_redis_url: str) -> Iterator[TestClient]:
    app = create_app(settings_for(fresh_database, api_redis_url))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def fetchval(client: TestClient, query: str, *args: Any) -> Any:
    """One value read through the service's own Postgres pool."""
    state = client.app.state.riverguard  # type: ignore[attr-defined]
    assert client.portal is not None
    return client.portal.call(state.records.pool.fetchval, query, *args)


def tx(**overrides: Any) -> dict[str, Any]:
    """A valid transaction body; a fresh id unless one is given."""
    body: dict[str, Any] = {
        "transaction_id": f"tx-{next(_ids):06d}",
        "card_id": "card_1",
        "merchant_id": "merch_1",
        "amount": 42.5,
        "currency": "EUR",
        "timestamp": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "channel": "ecom",
        "country": "FR",
    }
    body.update(overrides)
    return body


def label(transaction_id: str, is_fraud: bool = True) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "is_fraud": is_fraud,
        "labeled_at": datetime.now(UTC).isoformat(),
        "source": "chargeback",
    }


@pytest.fixture
async def repo(fresh_database: str) -> AsyncIterator[PgRepository]:
    """The Postgres repository on a fresh, migrated database."""
    pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await migrate.migrate(conn)
    try:
        yield PgRepository(pool)
    finally:
        await pool.close()
