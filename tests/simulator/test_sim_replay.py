"""Replay over HTTP to a tiny FastAPI app (in-process ASGI), and split with a second sink."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from simulator.generate import SimConfig, generate
from simulator.records import Record, Truth
from simulator.replay import Pacing, Split, replay, share_of
from simulator.sinks import Delivery, HttpSink

API_KEY = "test-key-123"


@dataclass
class Service:
    """What the fake service saw, in arrival order."""

    events: list[tuple[str, str]] = field(default_factory=list)
    keys: set[str | None] = field(default_factory=set)
    attempts: Counter[str] = field(default_factory=Counter)
    parked: int = 0
    reject: set[str] = field(default_factory=set)
    flaky: set[str] = field(default_factory=set)
    slow: float = 0.0

    def app(self) -> FastAPI:
        api = FastAPI()
        api.post("/v1/transactions")(self._transaction)
        api.post("/v1/labels")(self._label)
        return api

    async def _transaction(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.keys.add(request.headers.get("x-api-key"))
        tx_id = body["transaction_id"]
        self.attempts[tx_id] += 1
        if self.slow:
            await asyncio.sleep(self.slow)
        if tx_id in self.flaky and self.attempts[tx_id] == 1:
            return JSONResponse({"detail": "try again"}, status_code=503)
        if tx_id in self.reject:
            return JSONResponse({"detail": "bad"}, status_code=422)
        self.events.append(("transaction", tx_id))
        return JSONResponse({"transaction_id": tx_id, "score": 0.1})

    async def _label(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.keys.add(request.headers.get("x-api-key"))
        if ("transaction", body["transaction_id"]) not in self.events:
            self.parked += 1
        self.events.append(("label", body["transaction_id"]))
        return JSONResponse({"ok": True}, status_code=202)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app()))

    def tx_ids(self) -> list[str]:
        return [tx_id for kind, tx_id in self.events if kind == "transaction"]


class ListSink:
    """A second sink that keeps what it was sent (a fake of our own Sink protocol)."""

    name = "list"

    def __init__(self) -> None:
        self.sent: list[Record] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def send(self, record: Record) -> Delivery:
        self.sent.append(record)
        return "accepted", "ok"


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return list(generate(SimConfig(cards=60, merchants=40, days=8, seed=21)))


def _sink(service: Service, client: httpx.AsyncClient, **options: Any) -> HttpSink:
    return HttpSink("http://service.test", API_KEY, client=client, backoff=0.001, **options)


async def test_every_transaction_arrives_once_and_labels_follow(records: list[Record]) -> None:
    service = Service()
    async with service.client() as client, _sink(service, client) as sink:
        summary = await replay(records, sink, concurrency=16)
    txs = [r.transaction_id for r in records if r.kind == "transaction"]
    assert sorted(service.tx_ids()) == sorted(txs)
    assert len(set(service.tx_ids())) == len(txs)
    assert service.parked == 0
    assert service.keys == {API_KEY}
    labels = sum(1 for r in records if r.kind == "label")
    assert labels > 0
    assert summary.by_kind == {"transaction": len(txs), "label": labels}
    assert summary.outcomes["transaction"] == {"accepted": len(txs)}
    assert summary.outcomes["label"] == {"accepted": labels}
    frauds = sum(1 for r in records if r.truth and r.truth.is_fraud)
    assert summary.by_scenario["legit"] == len(txs) - frauds
    assert summary.failed == 0


def _interleaved(n: int) -> list[Record]:
    """Each label right behind its transaction: only waiting for the ack keeps them in order."""
    out = []
    for i in range(n):
        at = f"2026-01-01T00:00:{i:02d}.000Z"
        tx = {"transaction_id": f"tx_{i}", "card_id": f"card_{i}"}
        label = {"transaction_id": f"tx_{i}", "is_fraud": True, "labeled_at": at}
        out += [
            Record("transaction", at, tx, Truth(True, "card_testing")),
            Record("label", at, label),
        ]
    return out


async def test_a_label_waits_for_its_transaction_to_be_acknowledged() -> None:
    service = Service(slow=0.01)
    async with service.client() as client, _sink(service, client) as sink:
        summary = await replay(_interleaved(30), sink, concurrency=16)
    assert service.parked == 0
    assert summary.outcomes["label"] == {"accepted": 30}


async def test_server_errors_are_retried_and_client_errors_rejected() -> None:
    records = _interleaved(20)
    service = Service(flaky={"tx_1", "tx_2"}, reject={"tx_3"})
    async with service.client() as client, _sink(service, client) as sink:
        summary = await replay(records, sink, concurrency=4)
    assert service.attempts["tx_1"] == 2
    assert summary.outcomes["transaction"] == {"accepted": 19, "rejected": 1}
    assert summary.outcomes["label"] == {"accepted": 19, "skipped": 1}
    assert ("label", "tx_3") not in service.events  # never parked on purpose
    assert summary.details["http_422"] == 1


async def test_unreachable_service_counts_as_failed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client,
        HttpSink(
            "http://nowhere.test", API_KEY, client=client, max_retries=2, backoff=0.001
        ) as sink,
    ):
        summary = await replay(_interleaved(3), sink)
    assert summary.outcomes["transaction"] == {"failed": 3}
    assert summary.outcomes["label"] == {"skipped": 3}
    assert summary.details["ConnectError"] == 3


async def test_split_routes_a_stable_share_to_http_and_the_rest_to_the_other_sink(
    records: list[Record],
) -> None:
    service, other = Service(), ListSink()
    async with service.client() as client, _sink(service, client) as http:
        summary = await replay(records, other, split=Split(http, 0.3), concurrency=16)
    txs = [r.transaction_id for r in records if r.kind == "transaction"]
    over_http = {tx for tx in txs if share_of(tx) < 0.3}
    assert set(service.tx_ids()) == over_http
    assert {r.transaction_id for r in other.sent if r.kind == "transaction"} == set(txs) - over_http
    assert len(over_http) / len(txs) == pytest.approx(0.3, abs=0.07)
    for kind, tx_id in service.events:  # labels follow their transaction's route
        assert (tx_id in over_http) or kind == "transaction"
    assert all(r.transaction_id not in over_http for r in other.sent)
    assert service.parked == 0
    assert set(summary.by_sink) == {"http", "list"}


async def test_paced_replay_still_delivers_everything(records: list[Record]) -> None:
    head = records[:40]
    service = Service()
    async with service.client() as client, _sink(service, client) as sink:
        by_rate = await replay(head, sink, pacing=Pacing(rate=5000))
        by_time = await replay(head, sink, pacing=Pacing(speedup=1e9))
    assert by_rate.records == by_time.records == 40
    assert by_rate.failed == by_time.failed == 0


def test_pacing_arithmetic_and_validation() -> None:
    assert Pacing(rate=10).delay_for(25, 999.0) == 2.5
    assert Pacing(speedup=60).delay_for(25, 120.0) == 2.0
    assert Pacing().delay_for(25, 120.0) == 0.0
    with pytest.raises(ValueError):
        Pacing(rate=1, speedup=1)
    with pytest.raises(ValueError):
        Pacing(rate=0)
    with pytest.raises(ValueError):
        Split(ListSink(), 1.5)
