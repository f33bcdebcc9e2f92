"""Recompute the Redis feature state from the durable record (after Redis lost its data)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

from app.core.learning import transaction_from_payload
from app.postgres.repository import PgRepository
from features import config as feature_config
from features import rebuild as feature_rebuild
from features import redis_io
from features import store as feature_store
from features.schema import Label


async def clear(client: redis_io.Client, prefix: str) -> int:
    """Delete every key of this deployment's prefix (SCAN + UNLINK, never FLUSHDB)."""
    removed = 0
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        removed += int(await client.unlink(key))
    return removed


async def events(repository: PgRepository) -> AsyncIterator[feature_rebuild.Event]:
    """Transactions in event-time order, each followed by its current label."""
    async for row in repository.history():
        tx = transaction_from_payload(json.loads(row["payload"]))
        yield tx
        if row["is_fraud"] is not None:
            label = Label(
                transaction_id=tx.transaction_id,
                is_fraud=row["is_fraud"],
                labeled_at=row["labeled_at"],
                source=row["source"],
            )
            yield (label, tx)


async def rebuild_features(
    client: redis_io.Client, repository: PgRepository, lateness_days: float
) -> feature_rebuild.RebuildStats:
    config = feature_config.FeatureConfig(lateness=timedelta(days=lateness_days))
    store = feature_store.RedisFeatureStore(client, config)
    await store.load_scripts()
    await clear(client, config.key_prefix)
    return await feature_rebuild.rebuild(store, events(repository), config=config)
