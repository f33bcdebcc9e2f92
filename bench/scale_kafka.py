"""Kafka end to end for bench/scale.py: a burst (sustained tx/s), then a paced run with labels.

The transactions go to the service's transactions topic (one consumer group: the scoring
processes split its partitions); a record counts once its score is on the scores topic,
which the service produces only after the record is in Postgres. Latency is the scores
record's timestamp minus the transaction record's (both create times on this machine's
clock). While the paced run goes on, labels for the burst's transactions arrive on the labels
topic at the same rate; the learner's learning-log head tells when they are learned, and the
processes' /metrics are sampled for the bundle each one scores with.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.api import cpu_seconds
from bench.stream import bare_loop

TRANSACTIONS, LABELS, SCORES = "transactions", "labels", "scores"


def transaction(run: str, i: int, base: datetime) -> tuple[bytes, bytes]:
    card = f"card_{i % 5000}"
    body = {
        "transaction_id": f"{run}-{i}", "card_id": card, "merchant_id": f"m_{i % 400}",
        "amount": 10 + (i * 37) % 300, "currency": "EUR",
        "timestamp": (base + timedelta(milliseconds=100 * i)).isoformat(), "channel": "pos",
    }  # fmt: skip
    return card.encode(), json.dumps(body).encode()


def label(run: str, i: int) -> tuple[bytes, bytes]:
    tx_id = f"{run}-{i}"
    body = {"transaction_id": tx_id, "is_fraud": i % 97 == 0,
            "labeled_at": datetime.now(UTC).isoformat(), "source": "chargeback"}  # fmt: skip
    return tx_id.encode(), json.dumps(body).encode()


async def produce(
    producer: AIOKafkaProducer,
    topic: str,
    records: list[tuple[bytes, bytes]],
    rate: float | None = None,
) -> list[float]:
    """Send ``records`` (at ``rate`` per second, open loop; None: at once); when each was sent."""
    sent: list[float] = []
    futures = []
    start = time.time() + 0.05
    for i, (key, value) in enumerate(records):
        due = start + i / rate if rate else time.time()
        if rate and due > time.time():
            await asyncio.sleep(due - time.time())
        at = max(due, time.time()) if rate else due
        futures.append(await producer.send(topic, value, key=key, timestamp_ms=int(at * 1000)))
        sent.append(at)
    await asyncio.gather(*futures)
    return sent


async def scores(bootstrap: str, count: int, timeout: float = 120) -> dict[str, float]:
    """transaction id -> the time its score was produced; every score on the topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    try:
        meta = await consumer._client.fetch_all_metadata()
        parts = meta.partitions_for_topic(SCORES) or ()
        consumer.assign([TopicPartition(SCORES, p) for p in parts])
        while len(out) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                for r in records:
                    out[json.loads(r.value or b"{}")["transaction_id"]] = r.timestamp / 1000
    finally:
        await consumer.stop()
    return out


async def metric(client: httpx.AsyncClient, url: str, name: str) -> float | None:
    try:
        text = (await client.get(f"{url}/metrics")).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


@dataclass
class Sampler:
    """Samples the learner's published bundle and each scorer's loaded one, every ``every`` s."""

    learner: str
    scorers: list[str]
    every: float = 0.2
    published: list[tuple[float, float]] = field(default_factory=list)  # (first seen, seq)
    lags: list[float] = field(default_factory=list)  # seconds a scorer was behind, per sample
    gauge: list[float] = field(default_factory=list)  # riverguard_bundle_lag_seconds samples
    head: list[tuple[float, float]] = field(default_factory=list)  # learner's log head

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            while not stop.is_set():
                now = time.monotonic()
                seq = await metric(client, self.learner, "riverguard_bundle_published_seq")
                head = await metric(client, self.learner, "riverguard_learning_log_head")
                if head is not None:
                    self.head.append((now, head))
                if seq is not None and (not self.published or seq > self.published[-1][1]):
                    self.published.append((now, seq))
                for url in self.scorers:
                    loaded = await metric(client, url, "riverguard_bundle_loaded_seq")
                    lag = await metric(client, url, "riverguard_bundle_lag_seconds")
                    if lag is not None:
                        self.gauge.append(lag)
                    if loaded is not None:
                        self.lags.append(self.behind(time.monotonic(), loaded))
                await asyncio.sleep(self.every)

    def behind(self, now: float, loaded: float) -> float:
        """How long a newer bundle than ``loaded`` has been published (0: up to date)."""
        newer = [at for at, seq in self.published if seq > loaded]
        return now - newer[0] if newer else 0.0


async def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def rate_between(times: list[float]) -> float:
    """Records per second between the first and the last (the steady part of a burst)."""
    times = sorted(times)
    return (len(times) - 1) / max(times[-1] - times[0], 1e-9)


def p99_ms(values: list[float]) -> float:
    return float(np.percentile(values, 99)) * 1000 if values else float("nan")


@dataclass
class KafkaResult:
    burst: int
    burst_tx_s: float
    burst_cpu: dict[str, float]  # process group -> CPU seconds over the burst
    bare_tx_s: float  # the in-run baseline: a bare aiokafka consume + decode + commit loop
    bare_cpu: float  # its CPU seconds (this process) over the same records
    paced_rate: float
    paced_p50_ms: float
    paced_p99_ms: float
    labels: int
    labels_s: float  # labels learned per second, from the first label sent to the last learned
    labels_learned: bool
    paced_cpu: dict[str, float]
    lag_p99_ms: float
    lag_max_ms: float
    gauge_max: float
    bundles: int


def cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    return {name: cpu_seconds(pids) for name, pids in groups.items()}


def spent(before: dict[str, float], groups: dict[str, list[int]]) -> dict[str, float]:
    return {name: cpu_seconds(pids) - before[name] for name, pids in groups.items()}


async def phases(
    bootstrap: str,
    learner: str,
    scorers: list[str],
    groups: dict[str, list[int]],
    burst: int = 8000,
    rate: float = 500,
    seconds: float = 6,
) -> KafkaResult:
    """Warm-up, burst, then paced transactions with labels at the same rate (see module)."""
    base = datetime.now(UTC) - timedelta(days=2)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    try:
        # warm-up: the consumer group has settled and every process has scored
        await produce(producer, TRANSACTIONS, [transaction("w", i, base) for i in range(300)])
        await scores(bootstrap, 300)
        records = [transaction("b", i, base + timedelta(hours=1)) for i in range(burst)]
        before = cpu(groups)
        await produce(producer, TRANSACTIONS, records)
        scored = await scores(bootstrap, 300 + burst)
        burst_cpu = spent(before, groups)
        burst_times = [scored[i] for i in _ids(records) if i in scored]
        cpu_before = time.process_time()
        bare = await bare_loop(bootstrap, TRANSACTIONS, 300 + burst)
        bare_cpu = time.process_time() - cpu_before
        paced = [transaction("p", i, base + timedelta(hours=3)) for i in range(int(rate * seconds))]
        labels = [label("b", i) for i in range(len(paced))]
        sampler, stop = Sampler(learner, scorers), asyncio.Event()
        sampling = asyncio.create_task(sampler.run(stop))
        await asyncio.sleep(0.5)  # a first sample of the learner's head and bundle
        head0 = sampler.head[-1][1] if sampler.head else 0.0
        before = cpu(groups)
        started = time.monotonic()
        sent, _ = await asyncio.gather(
            produce(producer, TRANSACTIONS, paced, rate),
            produce(producer, LABELS, labels, rate),
        )
        learned = await wait_for(
            lambda: bool(sampler.head) and sampler.head[-1][1] >= head0 + len(labels), 60
        )
        learned_at = sampler.head[-1][0]
        scored = await scores(bootstrap, 300 + burst + len(paced))
        paced_cpu = spent(before, groups)
        await asyncio.sleep(1.5)  # followers load the last bundle (polled every second)
        stop.set()
        await sampling
    finally:
        await producer.stop()
    latencies = [scored[i] - at for i, at in zip(_ids(paced), sent, strict=True) if i in scored]
    return KafkaResult(
        burst=burst, burst_tx_s=rate_between(burst_times), burst_cpu=burst_cpu,
        bare_tx_s=bare, bare_cpu=bare_cpu / (300 + burst) * burst,
        paced_rate=rate, paced_p50_ms=float(np.percentile(latencies, 50)) * 1000,
        paced_p99_ms=p99_ms(latencies), labels=len(labels),
        labels_s=len(labels) / max(learned_at - started, 1e-9), labels_learned=learned,
        paced_cpu=paced_cpu, lag_p99_ms=p99_ms(sampler.lags),
        lag_max_ms=max(sampler.lags, default=float("nan")) * 1000,
        gauge_max=max(sampler.gauge, default=float("nan")), bundles=len(sampler.published),
    )  # fmt: skip


def _ids(records: list[tuple[bytes, bytes]]) -> list[str]:
    return [str(json.loads(value)["transaction_id"]) for _, value in records]
