"""Outward delivery adapters: the ``decisions`` topic publisher and the webhook HTTP poster."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
from aiokafka import AIOKafkaProducer

from app.core.outbox import Event, Post, Publish


def kafka_publisher(producer: AIOKafkaProducer, topic: str) -> Publish:
    """Send every event keyed by card and return once the broker acknowledged all of them."""

    async def publish(events: Sequence[Event]) -> None:
        sent = [await producer.send(topic, e.body, key=e.card_id.encode()) for e in events]
        await asyncio.gather(*sent)  # raises if any was refused: the rows stay in the outbox

    return publish


async def discard(events: Sequence[Event]) -> None:
    """No Kafka configured: the events go to the webhooks only (the outbox stays bounded)."""


def http_poster(client: httpx.AsyncClient) -> Post:
    async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        response = await client.post(url, content=body, headers=headers)
        return response.status_code

    return post
