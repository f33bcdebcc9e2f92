"""Recompute the Redis feature state from history (after Redis data was lost).

The app feeds every stored transaction in event-time order, each label after its
transaction, to :func:`rebuild` on an empty key prefix. The same scripts as live scoring
run on them, so the rebuilt state gives every later transaction the same features as the
lost state would have: card records and merchant buckets are a function of the set of
accepted transactions (not of their order), and label counts of the latest label per id —
the fraud counts at its transaction's event time, the arrived counts at its ``labeled_at``
(so each label must come with the ``labeled_at`` of the label that made it current, as the
app's history gives it). Replayed right after its transaction, a label may land in buckets
ahead of the merchant's newest event; they are read only by later events, as live.

Late transactions are never stored by the app (the card rejected them, so no entity
counted them), so the history holds exactly what the state held. Dedup markers: old
transactions are replayed without markers (a client cannot retry them any more); those
newer than ``markers_since`` (default: now minus the dedup TTL) get markers again, so a
retry arriving after the rebuild is still recognised.

>>> import asyncio
>>> from features import reference
>>> from features.schema import Transaction
>>> tx = Transaction(transaction_id="t1", card_id="c1", merchant_id="m1", amount=10,
...                  currency="EUR", timestamp="2026-01-05T10:00:00Z")
>>> asyncio.run(rebuild(reference.MemoryFeatureStore(), [tx])).transactions
1
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from features.config import FeatureConfig, FeatureResult
from features.schema import Label, Transaction

Event = Transaction | tuple[Label, Transaction]


class Replayable(Protocol):
    """What a rebuild needs of a store (RedisFeatureStore and MemoryFeatureStore have it)."""

    @property
    def config(self) -> FeatureConfig: ...

    async def score_batch(
        self, txs: Sequence[Transaction], *, markers: bool = True
    ) -> list[FeatureResult]: ...

    async def apply_labels(self, items: Sequence[tuple[Label, Transaction]]) -> None: ...


@dataclass
class RebuildStats:
    """What a rebuild did: events replayed, and any that were not counted again."""

    transactions: int = 0
    labels: int = 0
    duplicates: int = 0
    late: int = 0
    seconds: float = 0.0


async def _events(events: AsyncIterable[Event] | Iterable[Event]) -> AsyncIterable[Event]:
    if isinstance(events, AsyncIterable):
        async for event in events:
            yield event
    else:
        for event in events:
            yield event


class _Replay:
    def __init__(self, store: Replayable, markers_since: datetime, batch_size: int) -> None:
        self.store = store
        self.markers_since = markers_since
        self.batch_size = batch_size
        self.txs: list[Transaction] = []
        self.labels: list[tuple[Label, Transaction]] = []
        self.stats = RebuildStats()

    async def add(self, event: Event) -> None:
        if isinstance(event, Transaction):
            await self.flush_labels()
            if self.txs and self._marked(event) != self._marked(self.txs[0]):
                await self.flush_txs()
            self.txs.append(event)
            if len(self.txs) >= self.batch_size:
                await self.flush_txs()
        else:
            await self.flush_txs()
            self.labels.append(event)
            if len(self.labels) >= self.batch_size:
                await self.flush_labels()

    def _marked(self, tx: Transaction) -> bool:
        return tx.timestamp >= self.markers_since

    async def flush_txs(self) -> None:
        if not self.txs:
            return
        results = await self.store.score_batch(self.txs, markers=self._marked(self.txs[0]))
        self.stats.transactions += len(results)
        self.stats.duplicates += sum(r.status == "duplicate" for r in results)
        self.stats.late += sum(r.status == "late" for r in results)
        self.txs = []

    async def flush_labels(self) -> None:
        if self.labels:
            await self.store.apply_labels(self.labels)
            self.stats.labels += len(self.labels)
            self.labels = []


async def rebuild(
    store: Replayable,
    events: AsyncIterable[Event] | Iterable[Event],
    *,
    config: FeatureConfig | None = None,
    markers_since: datetime | None = None,
    batch_size: int = 500,
) -> RebuildStats:
    """Replay ``events`` (transactions, and ``(label, transaction)`` pairs) in the given order.

    ``events`` must be in event-time order with unique transaction ids, on an empty key
    prefix (FLUSHDB, or a new prefix that the app then switches to). A duplicate (already
    marked, e.g. scored live during the rebuild) is not counted twice. ``config`` (default:
    the store's) gives the dedup TTL behind the default ``markers_since``.
    """
    started = time.perf_counter()
    ttl = (config or store.config).dedup_ttl
    since = markers_since or datetime.now(UTC) - ttl
    replay = _Replay(store, since, batch_size)
    async for event in _events(events):
        await replay.add(event)
    await replay.flush_txs()
    await replay.flush_labels()
    replay.stats.seconds = time.perf_counter() - started
    return replay.stats
