"""Start and stop the stream workers (topics created first when missing)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from app.core import series
from app.stream import handlers
from app.stream.worker import StreamContext, Worker


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


async def start_workers(ctx: StreamContext) -> list[tuple[Worker, asyncio.Task[None]]]:
    settings = ctx.settings
    assert settings.kafka_bootstrap is not None
    topics = settings.topics
    await ensure_topics(
        settings.kafka_bootstrap,
        [topics.transactions, topics.labels, topics.scores, topics.dead_letter],
        topics.partitions,
    )
    series.for_worker(ctx.metrics, topics.transactions, "transaction")
    series.for_worker(ctx.metrics, topics.labels, "label")
    workers = [
        Worker("transactions", topics.transactions, ctx, handlers.transactions_handler(ctx)),
        Worker("labels", topics.labels, ctx, handlers.labels_handler(ctx)),
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
