"""A Kafka stream worker: raw bytes → decode → service → durable write → produce → commit.

Each worker consumes bytes (a raising deserializer would block its partition forever), handles
a whole poll batch at once, and commits offsets only after the batch is in Postgres and its
results (scores, dead letters) are acknowledged by the broker (``acks="all"``). A crash at any
point therefore redelivers, and idempotent processing makes the redelivery a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from app.config import Settings
from app.core import series
from app.core.learning import Learner
from app.core.metrics import Metrics
from app.core.readiness import Readiness
from app.core.scoring import ScoringService, ServiceReason
from features.pan import redact_pan_bytes, redact_record
from features.schema import ProblemReason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamContext:
    """What the workers use: settings, the two use-cases, readiness, metrics, the producer."""

    settings: Settings
    service: ScoringService
    learner: Learner
    readiness: Readiness
    metrics: Metrics
    producer: AIOKafkaProducer


@dataclass
class DeadLetter:
    record: Any
    reason: ProblemReason | ServiceReason


@dataclass
class Worker:
    """One consumer-group member for ``topic``; ``handle`` turns a batch into dead letters."""

    name: str
    topic: str
    ctx: StreamContext
    handle: Callable[[Sequence[Any]], Awaitable[list[DeadLetter]]]
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _batch_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _partitions: set[int] = field(default_factory=set)  # assigned to this worker now

    def stop(self) -> None:
        self._stopping.set()

    async def supervise(self) -> None:
        """Run until stopped; after a failure, start over (uncommitted records come again)."""
        while not self._stopping.is_set():
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; restarting in 1s", self.name)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):  # not wait_for: it can eat a cancel (3.11)
                        await self._stopping.wait()

    async def run(self) -> None:
        settings = self.ctx.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{settings.stream.group_id}-{self.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.stream.max_batch,
            isolation_level="read_uncommitted",
        )
        consumer.subscribe(
            [self.topic], listener=_FlushBeforeRevoke(self._batch_lock, self._on_assigned)
        )
        await consumer.start()
        try:
            while not self._stopping.is_set():
                self.ctx.readiness.beat(self.name)
                polled = await consumer.getmany(timeout_ms=settings.stream.poll_timeout_ms)
                if polled:
                    async with self._batch_lock:
                        await self._process(consumer, polled)
        finally:
            self.ctx.readiness.forget(self.name)
            await consumer.stop()  # leaves the group

    def _on_assigned(self, assigned: set[int]) -> None:
        series.reassign(self.ctx.metrics, self.topic, self._partitions, assigned)
        self._partitions = assigned

    async def _process(
        self, consumer: AIOKafkaConsumer, polled: dict[TopicPartition, list[Any]]
    ) -> None:
        """One poll (every partition) as one batch: one group commit, one offset commit."""
        metrics = self.ctx.metrics
        records = [record for batch in polled.values() for record in batch]
        metrics.batch_size.labels(self.topic).observe(len(records))
        # Lag before the batch counts the batch itself: a worker that fails on every batch
        # (and so never commits) shows records waiting, and the stall alert can fire.
        self._set_lag(consumer, {tp: batch[0].offset for tp, batch in polled.items()})
        dead = await self.handle(records)
        if dead:
            await self._dead_letter(dead)
        await consumer.commit({tp: batch[-1].offset + 1 for tp, batch in polled.items()})
        metrics.last_commit.labels(self.topic).set(time.time())
        self._set_lag(consumer, {tp: batch[-1].offset + 1 for tp, batch in polled.items()})

    def _set_lag(self, consumer: AIOKafkaConsumer, positions: dict[TopicPartition, int]) -> None:
        for tp, position in positions.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag = max(highwater - position, 0)
                self.ctx.metrics.consumer_lag.labels(self.topic, str(tp.partition)).set(lag)

    async def _dead_letter(self, dead: list[DeadLetter]) -> None:
        limit = self.ctx.settings.stream.dead_letter_max_bytes
        topic = self.ctx.settings.topics.dead_letter
        sends = []
        for item in dead:
            # dead letters never carry a card number; ids with formats of their own are kept
            value = redact_record(bytes(item.record.value or b""))
            truncated = len(value) > limit
            headers = [
                ("reason", item.reason.encode()),
                ("source_topic", self.topic.encode()),
                ("partition", str(item.record.partition).encode()),
                ("offset", str(item.record.offset).encode()),
                ("truncated", b"true" if truncated else b"false"),
            ]
            # a key is opaque bytes (usually the card id): every PAN-looking run goes
            raw_key = item.record.key
            key = redact_pan_bytes(bytes(raw_key)) if raw_key is not None else None
            sends.append(
                await self.ctx.producer.send(topic, value[:limit], key=key, headers=headers)
            )
            self.ctx.metrics.dead_letters.labels(self.topic, item.reason).inc()
        await asyncio.gather(*sends)


class _FlushBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Wait for the in-flight batch (processed and committed) before partitions move; report
    the partitions assigned after each rebalance (their per-partition series)."""

    def __init__(self, lock: asyncio.Lock, on_assigned: Callable[[set[int]], None]) -> None:
        self.lock = lock
        self.on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.lock:
            return

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # the whole new assignment (aiokafka's eager protocol revokes everything first)
        self.on_assigned({tp.partition for tp in assigned})
