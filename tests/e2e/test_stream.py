"""Kafka workers on the embedded broker: poison records, crashes, two workers, both paths."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.service_process import KEY, ServiceProcess, serve

PAN = "4111111111111111"
pytestmark = pytest.mark.slow


@pytest.fixture
def topics() -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    return {
        "RIVERGUARD_TOPICS__TRANSACTIONS": f"tx-{run}",
        "RIVERGUARD_TOPICS__LABELS": f"labels-{run}",
        "RIVERGUARD_TOPICS__SCORES": f"scores-{run}",
        "RIVERGUARD_TOPICS__DEAD_LETTER": f"dlq-{run}",
        "RIVERGUARD_STREAM__GROUP_ID": f"group-{run}",
    }


@pytest.fixture
def stream_redis(redis_url: str) -> Iterator[str]:
    url = redis_url.rsplit("/", 1)[0] + "/4"
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def env(
    topics: dict[str, str], stream_redis: str, fresh_database: str, kafka_bootstrap: str
) -> dict[str, str]:
    return {
        **topics,
        "RIVERGUARD_REDIS_URL": stream_redis,
        "RIVERGUARD_DATABASE_URL": fresh_database,
        "RIVERGUARD_KAFKA_BOOTSTRAP": kafka_bootstrap,
    }


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


def transaction(i: int, card: str | None = None, **overrides: Any) -> dict[str, Any]:
    start = datetime.now(UTC) - timedelta(days=3)
    body: dict[str, Any] = {
        "transaction_id": f"tx-{i:06d}",
        "card_id": card or f"card_{i % 97}",
        "merchant_id": f"m_{i % 13}",
        "amount": round(5 + (i * 7919) % 500 + 0.25, 2),
        "currency": "EUR",
        "timestamp": (start + timedelta(seconds=30 * i)).isoformat(),
        "channel": "pos",
    }
    body.update(overrides)
    return body


async def produce(
    producer: AIOKafkaProducer, topic: str, values: list[bytes], keys: list[bytes]
) -> None:
    futures = [await producer.send(topic, v, key=k) for v, k in zip(values, keys, strict=True)]
    await asyncio.gather(*futures)


async def count_rows(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM transactions"))
    finally:
        await conn.close()


async def wait_rows(
    database_url: str, expected: int, timeout: float, service: ServiceProcess | None = None
) -> int:
    deadline = time.monotonic() + timeout
    rows = -1
    while time.monotonic() < deadline:
        try:
            rows = await count_rows(database_url)
        except asyncpg.UndefinedTableError:
            rows = 0
        if rows >= expected:
            return rows
        await asyncio.sleep(0.2)
    tail = service.log_tail() if service else ""
    raise AssertionError(f"{rows} of {expected} rows after {timeout}s\n{tail}")


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"reader-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


async def committed(bootstrap: str, group: str, topic: str) -> int:
    """Offset committed by ``group`` on partition 0 of ``topic`` (without joining the group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return int(await consumer.committed(TopicPartition(topic, 0)) or 0)
    finally:
        await consumer.stop()


async def test_poison_records_are_dead_lettered_and_the_partition_moves_on(
    env: dict[str, str], producer: AIOKafkaProducer, kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {**env, "RIVERGUARD_TOPICS__PARTITIONS": "1"}
    service = serve(env).start(tmp_path / "svc.log")
    try:
        topic = env["RIVERGUARD_TOPICS__TRANSACTIONS"]
        nan = json.dumps(transaction(2)).replace('"amount": ', '"amount": NaN, "x": ').encode()
        values = [
            json.dumps(transaction(1)).encode(),
            b"\x00\xffgarbage{",
            nan,
            json.dumps(transaction(3, card=PAN)).encode(),
            json.dumps(transaction(4)).encode(),
        ]
        await produce(producer, topic, values, [b"k"] * 5)
        await wait_rows(env["RIVERGUARD_DATABASE_URL"], 2, 30, service)
        dead = await read_topic(kafka_bootstrap, env["RIVERGUARD_TOPICS__DEAD_LETTER"], 3)
        reasons = sorted(dict(d.headers)["reason"].decode() for d in dead)
        assert len(dead) == 3
        assert reasons == sorted(["invalid_json", "non_finite_number", "pan_rejected"])
        assert all(dict(d.headers)["source_topic"].decode() == topic for d in dead)
        assert all(PAN.encode() not in (d.value or b"") for d in dead)
        scores = await read_topic(kafka_bootstrap, env["RIVERGUARD_TOPICS__SCORES"], 2)
        assert sorted(json.loads(s.value)["transaction_id"] for s in scores) == [
            "tx-000001",
            "tx-000004",
        ]
        group = f"{env['RIVERGUARD_STREAM__GROUP_ID']}-transactions"
        deadline = time.monotonic() + 10
        while await committed(kafka_bootstrap, group, topic) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert await committed(kafka_bootstrap, group, topic) == 5
        conn = await asyncpg.connect(env["RIVERGUARD_DATABASE_URL"])
        dump = await conn.fetchval("SELECT string_agg(t::text, '') FROM transactions t")
        await conn.close()
        assert PAN not in dump
        assert PAN not in service.log_tail()
        keys = redis.Redis.from_url(env["RIVERGUARD_REDIS_URL"]).keys("*")
        assert not any(PAN.encode() in k for k in keys)
    finally:
        service.stop()


async def test_luhn_valid_ids_are_scored_and_only_card_numbers_are_redacted(
    env: dict[str, str], producer: AIOKafkaProducer, kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {**env, "RIVERGUARD_TOPICS__PARTITIONS": "1"}
    service = serve(env).start(tmp_path / "svc.log")
    try:
        topic = env["RIVERGUARD_TOPICS__TRANSACTIONS"]
        dlq = env["RIVERGUARD_TOPICS__DEAD_LETTER"]
        mid = "100000000000009"  # a 15-digit MID passing Luhn
        hex_id = "bb-44309474983643b9"  # the id of the defect: a Luhn-valid 14-digit run
        good = transaction(1, transaction_id=hex_id, merchant_id=mid)
        card = transaction(2, card=PAN, merchant_id=mid)
        values = [json.dumps(good).encode(), json.dumps(card).encode()]
        await produce(producer, topic, values, [b"card_1", PAN.encode()])
        await wait_rows(env["RIVERGUARD_DATABASE_URL"], 1, 30, service)
        conflict = json.dumps({**good, "amount": good["amount"] + 1}).encode()
        await produce(producer, topic, [conflict], [b"card_1"])
        dead = {
            dict(d.headers)["reason"].decode(): d for d in await read_topic(kafka_bootstrap, dlq, 2)
        }
        assert sorted(dead) == ["conflict", "pan_rejected"]
        refused = json.loads(dead["pan_rejected"].value)
        assert refused["card_id"] == "[REDACTED]" and refused["merchant_id"] == mid
        assert PAN.encode() not in dead["pan_rejected"].value + dead["pan_rejected"].key
        assert dead["conflict"].value == conflict  # nothing to hide: the original bytes
        scores = await read_topic(kafka_bootstrap, env["RIVERGUARD_TOPICS__SCORES"], 1)
        assert [json.loads(s.value)["transaction_id"] for s in scores] == [hex_id]
        conn = await asyncpg.connect(env["RIVERGUARD_DATABASE_URL"])
        dump = await conn.fetchval("SELECT string_agg(t::text, '') FROM transactions t")
        await conn.close()
        assert mid in dump and hex_id in dump
        assert PAN not in dump
        assert service.log_path is not None and PAN not in service.log_path.read_text()
    finally:
        service.stop()


async def test_sigkill_three_times_loses_and_doubles_nothing(
    env: dict[str, str], producer: AIOKafkaProducer, kafka_bootstrap: str, tmp_path: Path
) -> None:
    total = 5000
    rng = random.Random(7)
    topic = env["RIVERGUARD_TOPICS__TRANSACTIONS"]
    bodies = [transaction(i) for i in range(total)]
    await produce(
        producer,
        topic,
        [json.dumps(b).encode() for b in bodies],
        [b["card_id"].encode() for b in bodies],
    )
    database = env["RIVERGUARD_DATABASE_URL"]
    for attempt in range(3):
        service = serve(env).start(tmp_path / f"svc-{attempt}.log")
        await asyncio.sleep(rng.uniform(0.3, 2.0))
        service.kill()
    service = serve(env).start(tmp_path / "svc-final.log")
    try:
        assert await wait_rows(database, total, 120, service) == total
        conn = await asyncpg.connect(database)
        ids = await conn.fetch("SELECT transaction_id FROM transactions")
        per_card = await conn.fetch(
            "SELECT card_id, count(*) AS n FROM transactions GROUP BY card_id"
        )
        await conn.close()
        assert sorted(r["transaction_id"] for r in ids) == sorted(
            b["transaction_id"] for b in bodies
        )
        for row in per_card[:20]:
            features = httpx.get(
                f"{service.url}/v1/cards/{row['card_id']}/features",
                headers={"X-API-Key": KEY},
                timeout=10,
            ).json()["features"]
            assert features["card_count_30d"] == row["n"], row["card_id"]
        dead = await read_topic(
            kafka_bootstrap, env["RIVERGUARD_TOPICS__DEAD_LETTER"], 1, timeout=3
        )
        assert dead == []
    finally:
        service.stop()


async def test_two_workers_split_partitions_and_score_each_transaction_once(
    env: dict[str, str], producer: AIOKafkaProducer, kafka_bootstrap: str, tmp_path: Path
) -> None:
    total = 2000
    topic = env["RIVERGUARD_TOPICS__TRANSACTIONS"]
    env = {**env, "RIVERGUARD_TOPICS__PARTITIONS": "4"}
    first = serve(env).start(tmp_path / "a.log")
    second = serve(env).start(tmp_path / "b.log")
    try:
        await asyncio.sleep(3)  # let the group settle on two members
        bodies = [transaction(i) for i in range(total)]
        await produce(
            producer,
            topic,
            [json.dumps(b).encode() for b in bodies],
            [b["card_id"].encode() for b in bodies],
        )
        assert await wait_rows(env["RIVERGUARD_DATABASE_URL"], total, 90, first) == total
        scored = [_kafka_scored(s) for s in (first, second)]
        assert all(n > 0 for n in scored), scored
        assert sum(scored) == total
    finally:
        first.stop()
        second.stop()


def _kafka_scored(service: ServiceProcess) -> int:
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("riverguard_inputs_total{")
            and 'path="kafka"' in line
            and 'outcome="scored"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


async def test_same_id_via_rest_and_kafka_concurrently_is_one_record(
    env: dict[str, str], producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    service = serve(env).start(tmp_path / "svc.log")
    try:
        bodies = [transaction(i, card="card_both") for i in range(50)]
        topic = env["RIVERGUARD_TOPICS__TRANSACTIONS"]
        async with httpx.AsyncClient(base_url=service.url, headers={"X-API-Key": KEY}) as client:
            rest = asyncio.gather(*(client.post("/v1/transactions", json=b) for b in bodies))
            kafka = produce(
                producer, topic, [json.dumps(b).encode() for b in bodies], [b"card_both"] * 50
            )
            responses, _ = await asyncio.gather(rest, kafka)
        assert all(r.status_code == 200 for r in responses), [
            r.text for r in responses if r.status_code != 200
        ]
        await wait_rows(env["RIVERGUARD_DATABASE_URL"], 50, 30, service)
        await asyncio.sleep(1)
        assert await count_rows(env["RIVERGUARD_DATABASE_URL"]) == 50
        features = httpx.get(
            f"{service.url}/v1/cards/card_both/features", headers={"X-API-Key": KEY}, timeout=10
        ).json()["features"]
        assert features["card_count_30d"] == 50
    finally:
        service.stop()
