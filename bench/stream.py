"""Benchmark: end-to-end Kafka throughput of one worker process vs a bare consume+decode loop.

Produces N transactions to a fresh topic, then measures (a) a bare aiokafka loop that
consumes and decodes them (the in-run baseline) and (b) `riverguard serve` consuming the same
topic until every transaction is in Postgres and on the `scores` topic. Prints markdown.

    .venv/bin/python -m bench.stream [--count 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.embedded import EmbeddedStack, free_port
from features.schema import decode_transaction


def bodies(count: int) -> list[tuple[bytes, bytes]]:
    base = datetime.now(UTC) - timedelta(days=2)
    out = []
    for i in range(count):
        card = f"card_{i % 5000}"
        body = {
            "transaction_id": f"s-{i}",
            "card_id": card,
            "merchant_id": f"m_{i % 400}",
            "amount": 10 + (i * 37) % 300,
            "currency": "EUR",
            "timestamp": (base + timedelta(seconds=i)).isoformat(),
            "channel": "pos",
        }
        out.append((card.encode(), json.dumps(body).encode()))
    return out


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def bare_loop(bootstrap: str, topic: str, count: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            for tp, records in batch.items():
                for record in records:
                    decode_transaction(record.value or b"", now=datetime.now(UTC))
                seen += len(records)
                await consumer.commit({tp: records[-1].offset + 1})
    finally:
        await consumer.stop()
    return count / (time.perf_counter() - started)


async def wait_done(database_url: str, bootstrap: str, scores: str, count: int) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(database_url)
    try:
        while True:
            try:
                rows = await conn.fetchval("SELECT count(*) FROM transactions")
            except asyncpg.UndefinedTableError:
                rows = 0
            if rows >= count:
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    consumer = AIOKafkaConsumer(scores, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"check-{uuid.uuid4().hex[:6]}")  # fmt: skip
    await consumer.start()
    seen = 0
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=500)
            seen += sum(len(r) for r in batch.values())
    finally:
        await consumer.stop()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:6]
    topic, scores = f"bench-tx-{run}", f"bench-scores-{run}"
    with EmbeddedStack() as stack:
        urls = stack.start()
        assert urls.kafka_bootstrap and urls.database_url and urls.redis_url
        records = bodies(args.count)
        asyncio.run(produce(urls.kafka_bootstrap, topic, records))
        bare = asyncio.run(bare_loop(urls.kafka_bootstrap, topic, args.count))
        env = {k: v for k, v in os.environ.items() if not k.startswith("RIVERGUARD_")}
        port = free_port()
        env.update({
            "RIVERGUARD_KAFKA_BOOTSTRAP": urls.kafka_bootstrap,
            "RIVERGUARD_REDIS_URL": urls.redis_url,
            "RIVERGUARD_DATABASE_URL": urls.database_url,
            "RIVERGUARD_API_KEYS": "k=score|label|admin",
            "RIVERGUARD_PORT": str(port),
            "RIVERGUARD_TOPICS__TRANSACTIONS": topic,
            "RIVERGUARD_TOPICS__SCORES": scores,
            "RIVERGUARD_LOG_LEVEL": "WARNING",
        })  # fmt: skip
        riverguard = str(Path(sys.executable).with_name("riverguard"))
        started = time.perf_counter()
        service = subprocess.Popen([riverguard, "serve"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            startup = time.perf_counter() - started
            elapsed = asyncio.run(
                wait_done(urls.database_url, urls.kafka_bootstrap, scores, args.count)
            )
        finally:
            service.terminate()
            service.wait(timeout=30)
    full = args.count / elapsed
    print("\n".join([
        "## Stream throughput (bench/stream.py)",
        "",
        f"{args.count:,} transactions on a 4-partition topic of the embedded broker, one worker process",
        "(champion + challengers, Redis features, group-committed Postgres, scores produced with acks=all,",
        "offsets committed after the write). Measured from the service answering /healthz (start-up",
        f"{startup:.1f} s excluded) until every transaction is in Postgres and on the scores topic.",
        "",
        "| pipeline | transactions/s | ratio to bare |",
        "|---|---:|---:|",
        f"| bare aiokafka consume + decode + commit | {bare:,.0f} | 1.00 |",
        f"| riverguard worker, end to end | {full:,.0f} | {full / bare:.2f} |",
        "",
        "Command: `.venv/bin/python -m bench.stream`",
        "",
    ]))  # fmt: skip


if __name__ == "__main__":
    main()
