"""Core room: decisions published outward — the outbox relay and the webhook sender.

Every stored decision and every review verdict leaves an outbox row written in the same
transaction as the record (``app.postgres.scored``, ``app.postgres.reviews``), so an event
exists exactly when its record does. The :class:`Relay` publishes waiting rows to the
``decisions`` topic keyed by card, and only once the broker has acknowledged them deletes them
(and queues one webhook delivery per configured endpoint) in the transaction that held the
claim. A process killed between the acknowledgement and the commit leaves its rows, and the
next relay sends them again: at least once, never missing; consumers dedupe by
``(kind, transaction_id)``.

Which process relays: any of them, one at a time. Each pass takes a transaction-level advisory
lock with *try* (the store's job): the winner relays the oldest rows in ``seq`` order, the
others skip the pass. A single relay keeps a card's events in the order they were written (two
relays claiming with SKIP LOCKED could publish a card's second event before its first), needs
no standing leader, and a dead relay's lock dies with its connection.

Webhooks: a delivery is claimed for ``timeout`` (its due time pushed forward, no transaction
held across the HTTP call), signed (:func:`signature`), and on failure retried after an
exponential backoff (:func:`backoff`) until ``max_attempts``, then moved to the dead letters.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import orjson
from prometheus_client import Counter

log = logging.getLogger(__name__)

Kind = Literal["decision", "verdict"]
#: how a webhook delivery ended, the label values of ``riverguard_webhook_deliveries_total``
WEBHOOK_OUTCOMES = ("delivered", "failed", "dead_lettered")


@dataclass(frozen=True)
class Event:
    """One outbox row made ready to publish: its key (the card) and its JSON body."""

    seq: int
    card_id: str
    body: bytes


def event_body(kind: Kind, fields: dict[str, Any]) -> bytes:
    """The published JSON: ``kind`` first, then the fields (datetimes as RFC 3339).

    >>> event_body("decision", {"transaction_id": "t1", "decision": "review"})
    b'{"kind":"decision","transaction_id":"t1","decision":"review"}'
    """
    return orjson.dumps({"kind": kind, **fields})


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over ``"<timestamp>.<body>"``, as ``v1=<hex>``.

    The receiver recomputes it with the shared secret from the ``X-Riverguard-Timestamp``
    header and the raw body, compares in constant time, and refuses timestamps older than its
    tolerance (a replayed request carries an old one).

    >>> signature(b"s3cret", 1700000000, b"{}")[:11]
    'v1=97926816'
    """
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def backoff(attempts: int, base_s: float, cap_s: float) -> float:
    """Seconds before retry number ``attempts`` (1 = the first retry): doubling, capped.

    >>> [backoff(n, 1.0, 10.0) for n in (1, 2, 3, 4, 5)]
    [1.0, 2.0, 4.0, 8.0, 10.0]
    """
    return float(min(cap_s, base_s * 2 ** (attempts - 1)))


Publish = Callable[[Sequence[Event]], Awaitable[None]]


class OutboxStore(Protocol):
    async def relay(self, limit: int, publish: Publish, endpoints: Sequence[str]) -> int:
        """Claim up to ``limit`` oldest rows (skip when another relay holds the claim), await
        ``publish`` of their events, then delete them and queue a delivery per endpoint, in one
        transaction; the number relayed."""
        ...

    async def claim_deliveries(
        self, endpoint: str, limit: int, now: datetime, hold: timedelta
    ) -> list[Delivery]:
        """Due deliveries of ``endpoint``, each hidden from other claimers for ``hold``."""
        ...

    async def delivered(self, ids: Sequence[int]) -> None: ...

    async def retry(self, delivery_id: int, error: str, at: datetime) -> None: ...

    async def dead_letter(self, delivery_id: int, error: str) -> None: ...


@dataclass(frozen=True)
class Delivery:
    id: int
    card_id: str
    body: bytes
    attempts: int  # failed attempts so far


@dataclass
class Relay:
    """Publish the outbox: a pass every ``every`` seconds, back-to-back while rows wait."""

    store: OutboxStore
    publish: Publish
    endpoints: Sequence[str]
    relayed: Counter
    errors: Counter
    batch: int = 500

    async def once(self) -> int:
        count = await self.store.relay(self.batch, self.publish, self.endpoints)
        self.relayed.inc(count)
        return count

    async def run(self, every: float) -> None:
        while True:
            try:
                count = await self.once()
            except Exception as exc:  # the rows stay; the next pass sends them
                self.errors.labels("relay").inc()
                log.warning("outbox relay pass failed: %s", type(exc).__name__)
                count = 0
            if count < self.batch:
                await asyncio.sleep(every)


Post = Callable[[str, bytes, dict[str, str]], Awaitable[int]]


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    secret: bytes


@dataclass
class WebhookSender:
    """Deliver one endpoint's queued events: signed, retried with backoff, dead-lettered."""

    store: OutboxStore
    endpoint: Endpoint
    post: Post  # (url, body, headers) -> HTTP status; raises on a transport failure
    deliveries: Counter
    clock: Callable[[], datetime]
    max_attempts: int = 8
    backoff_s: float = 1.0
    backoff_cap_s: float = 300.0
    timeout_s: float = 5.0
    batch: int = 50

    async def once(self) -> int:
        now = self.clock()
        hold = timedelta(seconds=self.timeout_s * 2)
        due = await self.store.claim_deliveries(self.endpoint.name, self.batch, now, hold)
        done = []
        for delivery in due:
            error = await self._send(delivery)
            if error is None:
                done.append(delivery.id)
                continue
            await self._failed(delivery, error)
        if done:
            await self.store.delivered(done)
            self.deliveries.labels(self.endpoint.name, "delivered").inc(len(done))
        return len(due)

    async def _send(self, delivery: Delivery) -> str | None:
        stamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "X-Riverguard-Timestamp": str(stamp),
            "X-Riverguard-Signature": signature(self.endpoint.secret, stamp, delivery.body),
        }
        try:
            status = await self.post(self.endpoint.url, delivery.body, headers)
        except Exception as exc:  # a transport failure is a failed attempt, named by type
            return type(exc).__name__
        return None if 200 <= status < 300 else f"HTTP {status}"

    async def _failed(self, delivery: Delivery, error: str) -> None:
        attempts = delivery.attempts + 1
        if attempts >= self.max_attempts:
            await self.store.dead_letter(delivery.id, error)
            self.deliveries.labels(self.endpoint.name, "dead_lettered").inc()
            return
        wait = backoff(attempts, self.backoff_s, self.backoff_cap_s)
        await self.store.retry(delivery.id, error, self.clock() + timedelta(seconds=wait))
        self.deliveries.labels(self.endpoint.name, "failed").inc()

    async def run(self, every: float, errors: Counter) -> None:
        while True:
            try:
                count = await self.once()
            except Exception as exc:
                errors.labels("webhook").inc()
                log.warning("webhook pass failed: %s", type(exc).__name__)
                count = 0
            if count < self.batch:
                await asyncio.sleep(every)
