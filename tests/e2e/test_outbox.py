"""Decisions published outward, on real servers: kill -9 of the scorer during traffic, then
every stored decision is on the ``decisions`` topic (by id; duplicates allowed, none missing),
a local webhook receiver verifies every signature, and an endpoint that always fails lands
every event in the dead-letter table after N tries."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.service_process import KEY, ServiceProcess, kafka_env, serve
from tests.webhook_receiver import SECRET, Receiver

pytestmark = pytest.mark.slow

ATTEMPTS = 3


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def env(
    redis_url: str, fresh_database: str, kafka_bootstrap: str, receiver: Receiver
) -> Iterator[dict[str, str]]:
    db7 = redis_url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(db7).flushdb()
    settings = kafka_env(db7, fresh_database, kafka_bootstrap, "outbox")
    run = settings["RIVERGUARD_STREAM__GROUP_ID"]
    hooks = [
        {"name": "ok", "url": f"{receiver.url}/ok", "secret": SECRET},
        {"name": "down", "url": f"{receiver.url}/fail", "secret": SECRET},
    ]
    yield {
        **settings,
        "RIVERGUARD_TOPICS__DECISIONS": f"{run}-decisions",
        "RIVERGUARD_OUTBOX__WEBHOOKS": json.dumps(hooks),
        "RIVERGUARD_OUTBOX__WEBHOOK_MAX_ATTEMPTS": str(ATTEMPTS),
        "RIVERGUARD_OUTBOX__WEBHOOK_BACKOFF_SECONDS": "0.05",
        "RIVERGUARD_OUTBOX__WEBHOOK_BACKOFF_MAX_SECONDS": "0.2",
    }
    redis.Redis.from_url(db7).flushdb()


def transaction(i: int) -> dict[str, Any]:
    start = datetime.now(UTC) - timedelta(days=2)
    return {
        "transaction_id": f"ob-{i:05d}",
        "card_id": f"card_{i % 23}",
        "merchant_id": f"m_{i % 7}",
        "amount": round(5 + (i * 7919) % 900 + 0.5, 2),
        "currency": "EUR",
        "timestamp": (start + timedelta(seconds=20 * i)).isoformat(),
        "channel": "ecom",
    }


async def rest_traffic(service: ServiceProcess, ids: range, stop: asyncio.Event) -> None:
    """Post ``ids`` eight at a time until done or ``stop`` (a killed service refuses)."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{service.port}", headers={"X-API-Key": KEY}, timeout=10
    ) as client:
        todo = list(ids)
        for start in range(0, len(todo), 8):
            if stop.is_set():
                return
            chunk = todo[start : start + 8]
            posts = [client.post("/v1/transactions", json=transaction(i)) for i in chunk]
            await asyncio.gather(*posts, return_exceptions=True)


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


async def read_decisions(bootstrap: str, topic: str, want: set[str], timeout: float) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                seen.extend(records)
            if want <= {json.loads(r.value)["transaction_id"] for r in seen}:
                break
    finally:
        await consumer.stop()
    return seen


async def settled(database: str, timeout: float) -> asyncpg.Record:
    """Wait until the outbox and the webhook deliveries are empty; the final counts."""
    conn = await asyncpg.connect(database)
    try:
        deadline = time.monotonic() + timeout
        while True:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM decision_outbox) AS outbox,"
                " (SELECT count(*) FROM webhook_deliveries) AS deliveries"
            )
            assert row is not None
            if (row["outbox"] == 0 and row["deliveries"] == 0) or time.monotonic() > deadline:
                return row
            await asyncio.sleep(0.3)
    finally:
        await conn.close()


async def stored_all(database: str, count: int, seconds: float) -> None:
    """Wait (bounded) until ``count`` transactions are stored: the worker's group join and
    the relay run on their own clocks, so an empty outbox alone does not mean all is in."""
    conn = await asyncpg.connect(database)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await conn.fetchval("SELECT count(*) FROM transaction_ids") >= count:
                return
            await asyncio.sleep(0.3)
    finally:
        await conn.close()


async def test_kill_9_during_traffic_every_decision_reaches_topic_and_webhooks(
    env: dict[str, str],
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    database = env["RIVERGUARD_DATABASE_URL"]
    kafka_half = [transaction(i) for i in range(400, 700)]
    for body in kafka_half:
        await producer.send(
            env["RIVERGUARD_TOPICS__TRANSACTIONS"],
            json.dumps(body).encode(),
            key=body["card_id"].encode(),
        )
    await producer.flush()
    service = serve(env).start(tmp_path / "first.log")
    stop = asyncio.Event()
    traffic = asyncio.create_task(rest_traffic(service, range(0, 400), stop))
    await asyncio.sleep(1.5)
    service.kill()  # mid-traffic: group commits, relay passes and deliveries in flight
    stop.set()
    await traffic
    service = serve(env).start(tmp_path / "second.log")
    try:
        await rest_traffic(service, range(0, 400), asyncio.Event())  # the rest (and replays)
        await stored_all(database, 700, 120)  # the Kafka half is consumed on its own clock
        left = await settled(database, 90)
        assert (left["outbox"], left["deliveries"]) == (0, 0), service.log_tail()
        conn = await asyncpg.connect(database)
        stored = {
            r["transaction_id"]
            for r in await conn.fetch("SELECT transaction_id FROM transaction_ids")
        }
        dead = await conn.fetch("SELECT endpoint, body, attempts FROM webhook_dead_letters")
        await conn.close()
        assert len(stored) == 700
        records = await read_decisions(
            kafka_bootstrap, env["RIVERGUARD_TOPICS__DECISIONS"], stored, 60
        )
        published = [json.loads(r.value) for r in records]
        assert {e["transaction_id"] for e in published} == stored
        assert all(r.key == json.loads(r.value)["card_id"].encode() for r in records)
        assert {e["kind"] for e in published} == {"decision"}
        assert receiver.bad_signatures == 0
        assert {e["transaction_id"] for e in receiver.events} == stored
        assert {d["endpoint"] for d in dead} == {"down"}
        assert {json.loads(d["body"])["transaction_id"] for d in dead} == stored
        assert {d["attempts"] for d in dead} == {ATTEMPTS}
        assert receiver.failed_tries >= ATTEMPTS * len(stored)
    finally:
        service.stop()
