"""Replay to the real (embedded) Kafka-compatible broker of the test session."""

from __future__ import annotations

import json
import uuid

import httpx
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from simulator.generate import SimConfig, generate
from simulator.records import Record
from simulator.replay import Split, replay, share_of
from simulator.sinks import HttpSink, KafkaSink


async def _consume(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: list[tuple[bytes, bytes]] = []
    try:
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=500)
            found += [(m.key, m.value) for msgs in batch.values() for m in msgs]
            if len(found) >= expected:
                break
    finally:
        await consumer.stop()
    return found


def _records() -> list[Record]:
    return list(generate(SimConfig(cards=50, merchants=40, days=6, seed=8)))


async def test_kafka_replay_keys_transactions_by_card_and_labels_by_transaction(
    kafka_bootstrap: str,
) -> None:
    records = _records()
    tx_topic, label_topic = f"tx-{uuid.uuid4().hex[:8]}", f"lb-{uuid.uuid4().hex[:8]}"
    async with KafkaSink(
        kafka_bootstrap, transactions_topic=tx_topic, labels_topic=label_topic
    ) as sink:
        summary = await replay(records, sink, concurrency=64)
    assert summary.failed == 0
    txs = [r for r in records if r.kind == "transaction"]
    labels = [r for r in records if r.kind == "label"]
    got_tx = await _consume(kafka_bootstrap, tx_topic, len(txs))
    got_labels = await _consume(kafka_bootstrap, label_topic, len(labels))
    assert len(got_tx) == len(txs) and len(got_labels) == len(labels)
    for key, value in got_tx:
        assert json.loads(value)["card_id"] == key.decode()
    for key, value in got_labels:
        assert json.loads(value)["transaction_id"] == key.decode()
    assert sorted(json.loads(v)["transaction_id"] for _, v in got_tx) == sorted(
        r.transaction_id for r in txs
    )


async def test_split_sends_each_transaction_one_way(kafka_bootstrap: str) -> None:
    records = _records()
    received: list[str] = []
    api = FastAPI()

    @api.post("/v1/transactions")
    async def transactions(request: Request) -> JSONResponse:
        received.append((await request.json())["transaction_id"])
        return JSONResponse({"ok": True})

    @api.post("/v1/labels")
    async def labels(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True}, status_code=202)

    topic = f"tx-{uuid.uuid4().hex[:8]}"
    transport = httpx.ASGITransport(app=api)
    async with (
        httpx.AsyncClient(transport=transport) as client,
        HttpSink("http://service.test", "key", client=client) as http,
        KafkaSink(kafka_bootstrap, transactions_topic=topic, labels_topic=topic + "-l") as kafka,
    ):
        summary = await replay(records, kafka, split=Split(http, 0.5))
    assert summary.failed == 0
    txs = [r.transaction_id for r in records if r.kind == "transaction"]
    on_kafka = await _consume(kafka_bootstrap, topic, len(txs) - len(received))
    kafka_ids = {json.loads(value)["transaction_id"] for _, value in on_kafka}
    assert set(received) == {tx for tx in txs if share_of(tx) < 0.5}
    assert kafka_ids == set(txs) - set(received)
