"""`riverguard stack`: export lines that work, and no child left after SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

RIVERGUARD = Path(sys.executable).with_name("riverguard")


def _read_exports(process: subprocess.Popen[str], expected: int, timeout: float) -> dict[str, str]:
    assert process.stdout is not None
    exports: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(exports) < expected and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        assert line.startswith("export "), f"unexpected stdout line: {line!r}"
        name, _, value = line.removeprefix("export ").strip().partition("=")
        exports[name] = value
    return exports


async def _kafka_round_trip(bootstrap: str) -> bytes:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id="rt"
    )
    await consumer.start()
    try:
        message = await consumer.getone()
        return bytes(message.value or b"")
    finally:
        await consumer.stop()


@pytest.mark.slow
async def test_stack_exports_work_and_sigterm_leaves_no_child() -> None:
    process = subprocess.Popen(
        [str(RIVERGUARD), "stack"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        exports = _read_exports(process, expected=3, timeout=60)
        assert set(exports) == {
            "RIVERGUARD_KAFKA_BOOTSTRAP",
            "RIVERGUARD_REDIS_URL",
            "RIVERGUARD_DATABASE_URL",
        }
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 3
        assert await _kafka_round_trip(exports["RIVERGUARD_KAFKA_BOOTSTRAP"]) == b"hello"
        client = aioredis.Redis.from_url(exports["RIVERGUARD_REDIS_URL"])
        assert await client.ping() is True
        await client.aclose()
        conn = await asyncpg.connect(exports["RIVERGUARD_DATABASE_URL"])
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
        _gone, alive = psutil.wait_procs(children, timeout=15)
        assert alive == [], f"children still alive: {[p.pid for p in alive]}"
        for child in children:
            assert not psutil.pid_exists(child.pid) or _is_zombie(child.pid)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def _is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
