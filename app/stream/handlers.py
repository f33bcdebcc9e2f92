"""Batch handlers of the two input topics: decode each record, call the use-case, and name
the records that go to the dead-letter topic (with their reason)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from app.core.scoring import Conflict, Rejected, Scored
from app.stream.worker import DeadLetter, StreamContext
from features.schema import Label, Problem, Transaction, decode_label, decode_transaction


def _decoder(ctx: StreamContext, decode: Callable[..., Any]) -> Callable[[Any], Any]:
    skew = ctx.settings.scoring.max_future_skew

    def run(record: Any) -> Any:
        if record.value is None:
            raise Problem("null_value")
        return decode(bytes(record.value), now=datetime.now(UTC), max_future_skew=skew)

    return run


def _split(
    records: Sequence[Any], decode: Callable[[Any], Any]
) -> tuple[list[tuple[Any, Any]], list[DeadLetter]]:
    good, dead = [], []
    for record in records:
        try:
            good.append((record, decode(record)))
        except Problem as problem:
            dead.append(DeadLetter(record, problem.reason))
    return good, dead


Handler = Callable[[Sequence[Any]], Awaitable[list[DeadLetter]]]


def transactions_handler(ctx: StreamContext) -> Handler:
    decode = _decoder(ctx, decode_transaction)
    scores_topic = ctx.settings.topics.scores

    async def handle(records: Sequence[Any]) -> list[DeadLetter]:
        good, dead = _split(records, decode)
        undecodable = list(dead)
        txs: list[Transaction] = [tx for _, tx in good]
        outcomes = await ctx.service.score(txs, "kafka") if txs else []
        sends = []
        for (record, tx), outcome in zip(good, outcomes, strict=True):
            if isinstance(outcome, Scored):
                sends.append(
                    await ctx.producer.send(scores_topic, outcome.body, key=tx.card_id.encode())
                )
            elif isinstance(outcome, Conflict):
                dead.append(DeadLetter(record, "conflict"))
            else:
                assert isinstance(outcome, Rejected)
                dead.append(DeadLetter(record, outcome.reason))
        # conflicts and late events were counted as rejections by the service already
        for item in undecodable:
            ctx.metrics.rejections.labels("transaction", item.reason).inc()
        if dead:
            ctx.metrics.inputs.labels("transaction", "kafka", "dead_letter").inc(len(dead))
        await asyncio.gather(*sends)
        return dead

    return handle


def labels_handler(ctx: StreamContext) -> Handler:
    decode = _decoder(ctx, decode_label)

    async def handle(records: Sequence[Any]) -> list[DeadLetter]:
        good, dead = _split(records, decode)
        labels: list[Label] = [label for _, label in good]
        statuses = await ctx.learner.submit(labels) if labels else []
        for status in statuses:
            ctx.metrics.inputs.labels("label", "kafka", status).inc()
        for item in dead:
            ctx.metrics.inputs.labels("label", "kafka", "dead_letter").inc()
            ctx.metrics.rejections.labels("label", item.reason).inc()
        return dead

    return handle
