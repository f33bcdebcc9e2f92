"""A real Prometheus scrapes a running riverguard: every dashboard and alert query has data.

The service (`riverguard serve` on the embedded Kafka, Valkey and PostgreSQL) gets a short,
varied run: transactions and labels over REST and Kafka, a poison record, a conflict, client
errors, a promotion and checkpoints. Prometheus (Debian's binary) scrapes it every second and
loads deploy/prometheus/alerts.yml. Then every PromQL expression of the Grafana dashboards and
the alert rules is evaluated through the HTTP API:

- as written, it must evaluate without error (e.g. no many-to-many matching), and
- with every comparison in its ``bool`` form it must return data. An alert condition that is
  false returns nothing, but its ``bool`` form returns 0 for every series it looks at; so
  "has data" means every series the query needs exists. No rule needs ``absent()`` or an
  ``offset`` longer than the run, so no expression is exempt.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
import yaml
from aiokafka import AIOKafkaProducer

from app.tools.embedded import free_port
from tests.deploy import promql
from tests.service_process import KEY, ServiceProcess, kafka_env, serve

pytestmark = pytest.mark.slow
HEADERS = {"X-API-Key": KEY}
N = 24  # transactions per path; every 4th labelled fraud, so each model sees both classes


def prometheus_binary() -> str:
    path = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(path).is_file():
        pytest.fail("prometheus not found: install Debian's `prometheus` package (`make tools`)")
    return path


class PrometheusServer:
    """A Prometheus scraping ``target`` every second, with the repository's alert rules."""

    def __init__(self, target: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.config = workdir / "prometheus.yml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(promql.PROMETHEUS_DIR / "alerts.yml")],
                    "scrape_configs": [
                        {"job_name": "riverguard", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> PrometheusServer:
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready in {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def log_tail(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]

    def query(self, expr: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body: dict[str, Any] = answer.json()
        return body

    def wait_for(self, expr: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.query(expr).get("data", {}).get("result"):
                return
            time.sleep(0.25)
        raise AssertionError(f"no data for {expr!r} after {timeout}s")

    def problems(self, exprs: list[tuple[str, str]]) -> dict[str, str]:
        """Where → what is wrong, for each expression that errs or has no data."""
        found = {}
        for where, expr in exprs:
            as_written = self.query(expr)
            if as_written["status"] != "success":
                found[where] = f"error: {as_written.get('error')}"
            elif not self.query(promql.comparisons_as_bool(expr))["data"]["result"]:
                found[where] = f"no data: {expr}"
        return found

    def rule_health(self) -> dict[str, str]:
        groups = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}


@pytest.fixture
def service(
    redis_url: str, fresh_database: str, kafka_bootstrap: str, tmp_path: Path
) -> Iterator[ServiceProcess]:
    db5 = redis_url.rsplit("/", 1)[0] + "/5"
    redis.Redis.from_url(db5).flushdb()
    env = kafka_env(db5, fresh_database, kafka_bootstrap, "prom")
    env["RIVERGUARD_SCORING__CHECKPOINT_EVERY_LABELS"] = "5"
    process = serve(env)
    try:
        yield process.start(tmp_path / "service.log")
    finally:
        process.stop()
        redis.Redis.from_url(db5).flushdb()


@pytest.fixture
def prometheus(service: ServiceProcess, tmp_path: Path) -> Iterator[PrometheusServer]:
    server = PrometheusServer(f"127.0.0.1:{service.port}", tmp_path)
    try:
        yield server.start()
    finally:
        server.stop()


def _transactions(prefix: str) -> list[dict[str, Any]]:
    start = datetime.now(UTC) - timedelta(hours=6)
    return [
        {
            "transaction_id": f"{prefix}-{i:04d}",
            "card_id": f"card_{i % 6}",
            "merchant_id": f"merch_{i % 4}",
            "amount": round(10 + (i * 37) % 400 + 0.5, 2),
            "currency": "EUR",
            "timestamp": (start + timedelta(minutes=5 * i)).isoformat(),
            "channel": "ecom" if i % 2 else "pos",
            "country": "FR",
        }
        for i in range(N)
    ]


def _labels(transactions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {"transaction_id": t["transaction_id"], "is_fraud": i % 4 == 0, "labeled_at": now,
         "source": "chargeback" if i % 4 == 0 else "review"}
        for i, t in enumerate(transactions)
    ]  # fmt: skip


async def _over_kafka(bootstrap: str, topics: dict[str, str], run: str) -> list[str]:
    transactions = _transactions(f"k{run}")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sends = [
            await producer.send(topics["tx"], orjson.dumps(t), key=t["card_id"].encode())
            for t in transactions
        ]
        sends.append(await producer.send(topics["tx"], b"{not json", key=b"poison"))
        sends += [
            await producer.send(
                topics["labels"], orjson.dumps(lb), key=lb["transaction_id"].encode()
            )
            for lb in _labels(transactions)
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return [t["transaction_id"] for t in transactions]


async def _over_rest(client: httpx.AsyncClient, run: str) -> None:
    transactions = _transactions(f"r{run}")
    for body in transactions:
        assert (await client.post("/v1/transactions", json=body)).status_code == 200
    for body in _labels(transactions):
        assert (await client.post("/v1/labels", json=body)).status_code in (200, 202)
    conflict = {**transactions[0], "amount": 999.0}
    assert (await client.post("/v1/transactions", json=conflict)).status_code == 409
    bad = {**transactions[1], "transaction_id": "x", "amount": -1}
    assert (await client.post("/v1/transactions", json=bad)).status_code == 422
    assert (await client.get("/v1/models", headers={"X-API-Key": "wrong"})).status_code == 401


async def _promote_a_challenger(client: httpx.AsyncClient) -> None:
    models = (await client.get("/v1/models")).json()["models"]
    challenger = next(m["name"] for m in models if m["role"] != "champion")
    answer = await client.post(f"/v1/models/{challenger}/promote", json={"reason": "e2e"})
    assert answer.status_code == 200, answer.text


async def test_every_dashboard_and_alert_query_has_data(
    service: ServiceProcess, prometheus: PrometheusServer, kafka_bootstrap: str
) -> None:
    run = uuid.uuid4().hex[:6]
    topics = {
        "tx": service.env["RIVERGUARD_TOPICS__TRANSACTIONS"],
        "labels": service.env["RIVERGUARD_TOPICS__LABELS"],
    }
    async with httpx.AsyncClient(base_url=service.url, headers=HEADERS, timeout=30) as client:
        kafka_ids = await _over_kafka(kafka_bootstrap, topics, run)
        await _over_rest(client, run)
        for attempt in itertools.count():
            if (await client.get(f"/v1/transactions/{kafka_ids[-1]}")).status_code == 200:
                break
            assert attempt < 300, f"Kafka transactions never stored:\n{service.log_tail()}"
            await asyncio.sleep(0.1)
        await _promote_a_challenger(client)

    for ready in (
        f"sum(riverguard_labels_total) >= {2 * N}",
        "sum(riverguard_checkpoints_total) > 0",
        "sum(riverguard_dead_letters_total) > 0",
        # three scrapes after the last new series: every rate() has two samples or more
        "count_over_time(riverguard_promotions_total[1m]) >= 3",
    ):
        await asyncio.to_thread(prometheus.wait_for, ready)

    problems = await asyncio.to_thread(prometheus.problems, promql.all_exprs())
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())
    health = prometheus.rule_health()
    assert set(health) == {rule["alert"] for rule in promql.alert_rules()}
    assert set(health.values()) == {"ok"}, health
