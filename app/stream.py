"""Kafka stream workers: raw bytes → decode → service → durable write → produce → commit.

Each worker consumes bytes (a raising deserializer would block its partition forever), handles
a whole poll batch at once, and commits offsets only after the batch is in Postgres and its
results (scores, dead letters) are acknowledged by the broker (``acks="all"``). A crash at any
point therefore redelivers, and idempotent processing makes the redelivery a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from app import series
from app.service import Conflict, Rejected, Scored, ServiceReason
from app.state import AppState
from features.schema import (
    Label,
    Problem,
    ProblemReason,
    Transaction,
    decode_label,
    decode_transaction,
    luhn_valid,
)

log = logging.getLogger(__name__)
_DIGITS = re.compile(rb"\d{13,19}")


def redact(raw: bytes) -> bytes:
    """Replace PAN-looking digit runs in raw bytes (dead letters never carry a card number)."""
    return _DIGITS.sub(
        lambda m: b"[REDACTED]" if luhn_valid(m.group().decode()) else m.group(), raw
    )


@dataclass
class DeadLetter:
    record: Any
    reason: ProblemReason | ServiceReason


@dataclass
class Worker:
    """One consumer-group member for ``topic``; ``handle`` turns a batch into dead letters."""

    name: str
    topic: str
    state: AppState
    producer: AIOKafkaProducer
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
                    await asyncio.wait_for(self._stopping.wait(), 1.0)

    async def run(self) -> None:
        settings = self.state.settings
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
                self.state.readiness.beat(self.name)
                polled = await consumer.getmany(timeout_ms=settings.stream.poll_timeout_ms)
                if polled:
                    async with self._batch_lock:
                        await self._process(consumer, polled)
        finally:
            self.state.readiness.forget(self.name)
            await consumer.stop()  # leaves the group

    def _on_assigned(self, assigned: set[int]) -> None:
        series.reassign(self.state.metrics, self.topic, self._partitions, assigned)
        self._partitions = assigned

    async def _process(
        self, consumer: AIOKafkaConsumer, polled: dict[TopicPartition, list[Any]]
    ) -> None:
        """One poll (every partition) as one batch: one group commit, one offset commit."""
        metrics = self.state.metrics
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
                self.state.metrics.consumer_lag.labels(self.topic, str(tp.partition)).set(lag)

    async def _dead_letter(self, dead: list[DeadLetter]) -> None:
        limit = self.state.settings.stream.dead_letter_max_bytes
        topic = self.state.settings.topics.dead_letter
        sends = []
        for item in dead:
            value = redact(bytes(item.record.value or b""))
            truncated = len(value) > limit
            headers = [
                ("reason", item.reason.encode()),
                ("source_topic", self.topic.encode()),
                ("partition", str(item.record.partition).encode()),
                ("offset", str(item.record.offset).encode()),
                ("truncated", b"true" if truncated else b"false"),
            ]
            key = redact(bytes(item.record.key)) if item.record.key is not None else None
            sends.append(await self.producer.send(topic, value[:limit], key=key, headers=headers))
            self.state.metrics.dead_letters.labels(self.topic, item.reason).inc()
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


def _decoder(state: AppState, decode: Callable[..., Any]) -> Callable[[Any], Any]:
    skew = state.settings.scoring.max_future_skew

    def run(record: Any) -> Any:
        if record.value is None:
            raise Problem("null_value")
        return decode(bytes(record.value), now=datetime.now(UTC), max_future_skew=skew)

    return run


def _split(
    records: Sequence[Any], decode: Callable[[Any], Any]
) -> tuple[list[tuple[Any, Any]], list[DeadLetter]]:
    good, dead = [], []
    for record in records:
        try:
            good.append((record, decode(record)))
        except Problem as problem:
            dead.append(DeadLetter(record, problem.reason))
    return good, dead


def transactions_handler(
    state: AppState, producer: AIOKafkaProducer
) -> Callable[[Sequence[Any]], Awaitable[list[DeadLetter]]]:
    decode = _decoder(state, decode_transaction)
    scores_topic = state.settings.topics.scores

    async def handle(records: Sequence[Any]) -> list[DeadLetter]:
        good, dead = _split(records, decode)
        undecodable = list(dead)
        txs: list[Transaction] = [tx for _, tx in good]
        outcomes = await state.service.score(txs, "kafka") if txs else []
        sends = []
        for (record, tx), outcome in zip(good, outcomes, strict=True):
            if isinstance(outcome, Scored):
                sends.append(
                    await producer.send(scores_topic, outcome.body, key=tx.card_id.encode())
                )
            elif isinstance(outcome, Conflict):
                dead.append(DeadLetter(record, "conflict"))
            else:
                assert isinstance(outcome, Rejected)
                dead.append(DeadLetter(record, outcome.reason))
        # conflicts and late events were counted as rejections by the service already
        for item in undecodable:
            state.metrics.rejections.labels("transaction", item.reason).inc()
        if dead:
            state.metrics.inputs.labels("transaction", "kafka", "dead_letter").inc(len(dead))
        await asyncio.gather(*sends)
        return dead

    return handle


def labels_handler(state: AppState) -> Callable[[Sequence[Any]], Awaitable[list[DeadLetter]]]:
    decode = _decoder(state, decode_label)

    async def handle(records: Sequence[Any]) -> list[DeadLetter]:
        good, dead = _split(records, decode)
        labels: list[Label] = [label for _, label in good]
        statuses = await state.learner.submit(labels) if labels else []
        for status in statuses:
            state.metrics.inputs.labels("label", "kafka", status).inc()
        for item in dead:
            state.metrics.inputs.labels("label", "kafka", "dead_letter").inc()
            state.metrics.rejections.labels("label", item.reason).inc()
        return dead

    return handle


async def ensure_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(n, num_partitions=partitions, replication_factor=1)
            for n in names
            if n not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def start_workers(state: AppState) -> list[tuple[Worker, asyncio.Task[None]]]:
    settings = state.settings
    assert settings.kafka_bootstrap is not None and state.backends.producer is not None
    topics = settings.topics
    await ensure_topics(
        settings.kafka_bootstrap,
        [topics.transactions, topics.labels, topics.scores, topics.dead_letter],
        topics.partitions,
    )
    producer = state.backends.producer
    series.for_worker(state.metrics, topics.transactions, "transaction")
    series.for_worker(state.metrics, topics.labels, "label")
    workers = [
        Worker(
            "transactions",
            topics.transactions,
            state,
            producer,
            transactions_handler(state, producer),
        ),
        Worker("labels", topics.labels, state, producer, labels_handler(state)),
    ]
    return [(w, asyncio.create_task(w.supervise(), name=w.name)) for w in workers]


async def stop_workers(workers: Sequence[tuple[Worker, asyncio.Task[None]]], grace: float) -> None:
    """Finish the in-flight batch, commit, leave the group; cancel after ``grace`` seconds."""
    for worker, _ in workers:
        worker.stop()
    tasks = [task for _, task in workers]
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
