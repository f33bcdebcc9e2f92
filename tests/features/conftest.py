"""Fixtures of the feature-store tests: a real Valkey (``redis_url`` from tests/conftest.py),
a fresh key prefix per test, and small transaction builders."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from features import store
from features.config import FeatureConfig
from features.schema import Label, Transaction

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


def tx(
    tx_id: str,
    at: timedelta | datetime,
    amount: str | Decimal = "10",
    *,
    card: str = "c1",
    merchant: str = "m1",
    **extra: object,
) -> Transaction:
    """A transaction ``at`` after T0 (or at a datetime)."""
    moment = at if isinstance(at, datetime) else T0 + at
    return Transaction.model_validate(
        {
            "transaction_id": tx_id,
            "card_id": card,
            "merchant_id": merchant,
            "amount": Decimal(amount),
            "currency": "EUR",
            "timestamp": moment,
            **extra,
        }
    )


def label(transaction: Transaction, is_fraud: bool = True) -> tuple[Label, Transaction]:
    known = transaction.timestamp + timedelta(days=1)
    return Label(transaction_id=transaction.transaction_id, is_fraud=is_fraud, labeled_at=known), (
        transaction
    )


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
