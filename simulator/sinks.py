"""Where a replay sends records: the REST API (httpx) or Kafka (aiokafka).

A sink is an async context manager with one method, ``send(record) -> (outcome, detail)``:
``accepted`` (acknowledged), ``rejected`` (the service refused it: a 4xx) or ``failed``
(it could not be delivered, after retries). Tests may pass small fakes of :class:`Sink`.

>>> sink = HttpSink("http://127.0.0.1:8000", "key")
>>> sink.name, sink.path_for("label")
('http', '/v1/labels')
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Literal, Protocol, Self

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from simulator.records import Kind, Record

Outcome = Literal["accepted", "rejected", "failed"]
Delivery = tuple[Outcome, str]
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class Sink(Protocol):
    """Delivers one record and says how it went; opened and closed with ``async with``."""

    name: str

    async def send(self, record: Record) -> Delivery: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class HttpSink:
    """``POST {url}/v1/transactions`` and ``/v1/labels`` with an ``X-API-Key`` header.

    Connection errors, 429 and 5xx are retried with exponential backoff; any other 4xx is a
    rejection. Pass ``client`` to reuse one (e.g. over ``httpx.ASGITransport`` in tests); the
    sink then leaves it open. Its own client keeps up to ``max_connections`` connections, all
    kept alive, and ``timeout`` bounds connecting, each read and write, and waiting for a free
    connection: keep the requests in flight at or below ``max_connections`` (httpx queues the
    others, at a CPU cost that grows with the queue).
    """

    name = "http"

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        max_connections: int = 256,
    ) -> None:
        self.url = url.rstrip("/")
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self._headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
        self._timeout = httpx.Timeout(timeout)
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = client
        self._owns_client = client is None

    @staticmethod
    def path_for(kind: Kind) -> str:
        return "/v1/transactions" if kind == "transaction" else "/v1/labels"

    async def __aenter__(self) -> Self:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, limits=self._limits)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, record: Record) -> Delivery:
        if self._client is None:
            raise RuntimeError("HttpSink used outside 'async with'")
        url, body = self.url + self.path_for(record.kind), record.payload()
        detail = "not_sent"
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
            try:
                response = await self._client.post(url, content=body, headers=self._headers)
            except httpx.TransportError as exc:
                detail = type(exc).__name__
                continue
            detail = f"http_{response.status_code}"
            if response.status_code < 400:
                return "accepted", detail
            if response.status_code < 500 and response.status_code not in RETRY_STATUSES:
                return "rejected", detail
        return "failed", detail


class KafkaSink:
    """Produce transactions (key ``card_id``) and labels (key ``transaction_id``), ``acks=all``.

    Idempotent producers are off: the embedded broker lacks them and the service is idempotent
    on the transaction id anyway (at-least-once). A send counts when the broker acknowledged it.
    """

    name = "kafka"

    def __init__(
        self,
        bootstrap: str,
        *,
        transactions_topic: str = "transactions",
        labels_topic: str = "labels",
        client_id: str = "riverguard-simulator",
        linger_ms: int = 5,
        request_timeout_ms: int = 30_000,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics: dict[Kind, str] = {"transaction": transactions_topic, "label": labels_topic}
        self._options = {
            "client_id": client_id,
            "linger_ms": linger_ms,
            "request_timeout_ms": request_timeout_ms,
        }
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Self:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False, **self._options
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @staticmethod
    def key_for(record: Record) -> bytes:
        """Partitioning key: the card for transactions, the transaction for labels."""
        field = "card_id" if record.kind == "transaction" else "transaction_id"
        return str(record.data[field]).encode()

    async def send(self, record: Record) -> Delivery:
        if self._producer is None:
            raise RuntimeError("KafkaSink used outside 'async with'")
        try:
            ack = await self._producer.send(
                self.topics[record.kind], value=record.payload(), key=self.key_for(record)
            )
            await ack
        except KafkaError as exc:
            return "failed", type(exc).__name__
        return "accepted", "ack"
