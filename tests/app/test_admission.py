"""The admission limit: past the limit, intake requests get 503 + Retry-After at once.

In process (no server): a route held open fills the limit, the next intake request is
refused, health and metrics still answer. On a real ``riverguard serve`` (uvicorn): a bounded
flood gets 200s and fast 503s only, and every 200 is a stored row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app.api.admission import INTAKE, AdmissionLimit
from app.core.metrics import Metrics
from tests.app.conftest import tx
from tests.service_process import KEY, ServiceProcess, serve

FLOOD, SENDERS, LIMIT = 160, 48, 2


def _shed(text: str) -> dict[str, float]:
    return {
        sample.labels["route"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "riverguard_http_requests_shed_total"
    }


async def test_over_the_limit_an_intake_request_is_refused_and_probes_still_answer() -> None:
    release = asyncio.Event()
    metrics = Metrics()
    inner = FastAPI()

    @inner.post("/v1/transactions")
    async def held() -> dict[str, str]:
        await release.wait()
        return {"ok": "yes"}

    @inner.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app = AdmissionLimit(inner, limit=LIMIT, metrics=metrics)
    assert _shed_of(metrics) == {route: 0.0 for route in INTAKE}  # the series exist at zero
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rg") as client:
        holding = [asyncio.create_task(client.post("/v1/transactions")) for _ in range(LIMIT)]
        while app.inflight < LIMIT:
            await asyncio.sleep(0)
        refused = await client.post("/v1/transactions")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["status"] == 503
        assert (await client.get("/healthz")).status_code == 200
        release.set()
        assert [r.status_code for r in await asyncio.gather(*holding)] == [200] * LIMIT
        assert app.inflight == 0
        assert (await client.post("/v1/transactions")).status_code == 200  # room again
    assert _shed_of(metrics) == {"/v1/transactions": 1.0, "/v1/labels": 0.0}


def _shed_of(metrics: Metrics) -> dict[str, float]:
    found = {}
    for route in INTAKE:
        value = metrics.registry.get_sample_value(
            "riverguard_http_requests_shed_total", {"route": route}
        )
        found[route] = value
    return found


@pytest.fixture
def service(redis_url: str, fresh_database: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    db = redis_url.rsplit("/", 1)[0] + "/11"
    redis.Redis.from_url(db).flushdb()
    process = serve(
        {
            "RIVERGUARD_REDIS_URL": db,
            "RIVERGUARD_DATABASE_URL": fresh_database,
            "RIVERGUARD_MAX_INFLIGHT_REQUESTS": str(LIMIT),
        }
    )
    try:
        yield process.start(tmp_path / "service.log")
    finally:
        process.stop()
        redis.Redis.from_url(db).flushdb()


async def _flood(url: str) -> tuple[list[tuple[str, httpx.Response]], list[int]]:
    """FLOOD transactions from SENDERS concurrent senders, probing /healthz meanwhile."""
    bodies = [tx(transaction_id=f"flood-{i:04d}", card_id=f"card_{i % 7}") for i in range(FLOOD)]
    limits = httpx.Limits(max_connections=SENDERS + 2)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        queue = list(reversed(bodies))
        answers: list[tuple[str, httpx.Response]] = []
        probes: list[int] = []

        async def sender() -> None:
            while queue:
                body = queue.pop()
                answer = await client.post(
                    "/v1/transactions", json=body, headers={"X-API-Key": KEY}
                )
                answers.append((body["transaction_id"], answer))

        async def prober() -> None:
            while queue:
                for path in ("/healthz", "/metrics"):
                    probes.append((await client.get(path)).status_code)
                await asyncio.sleep(0.01)

        await asyncio.gather(prober(), *(sender() for _ in range(SENDERS)))
    return answers, probes


@pytest.mark.slow
async def test_a_flood_gets_fast_503s_and_loses_no_answered_transaction(
    service: ServiceProcess, fresh_database: str
) -> None:
    answers, probes = await _flood(service.url)
    statuses = [answer.status_code for _, answer in answers]
    assert len(answers) == FLOOD and set(statuses) <= {200, 503}, statuses
    refused = [answer for _, answer in answers if answer.status_code == 503]
    assert refused and all(answer.headers["retry-after"] == "1" for answer in refused)
    assert probes and set(probes) == {200}  # health and metrics are never shed
    answered = {tx_id for tx_id, answer in answers if answer.status_code == 200}
    conn = await asyncpg.connect(fresh_database)
    try:
        stored = {r["transaction_id"] for r in await conn.fetch(
            "SELECT transaction_id FROM scored_transactions")}  # fmt: skip
    finally:
        await conn.close()
    assert stored == answered
    metrics = httpx.get(f"{service.url}/metrics", timeout=10).text
    assert _shed(metrics) == {"/v1/transactions": len(refused), "/v1/labels": 0}
