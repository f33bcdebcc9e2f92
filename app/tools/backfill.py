"""``riverguard history backfill``: start a running deployment warm from a record stream.

The history goes through the service's own path, in the order it happened:

* a run of consecutive transactions is POSTed to a scorer, many at once, but never two of the
  same card or the same merchant at once (their features depend on each other's order);
* a run of labels is POSTed one after another to the *leading learner*, which answers once it
  has learned each one (and updated the label-derived features): the next transaction
  therefore sees exactly the labels that came before it in the stream, as an offline replay
  does, and the learner learns them in stream order.

Progress is saved after every run (``<file>.progress``), so a re-run after a crash resumes
from the last finished run; what a run had already delivered is replayed harmlessly (one id is
one record, a label is learned once). At the end the backfill waits until the scorer scores
with a bundle that holds every label it delivered.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from simulator.records import Record

RETRY_STATUSES = frozenset({429, 502, 503, 504})


class BackfillError(RuntimeError):
    """The backfill cannot go on (a service unreachable, a learner that does not lead)."""


@dataclass(frozen=True)
class Target:
    """Where the history goes: a scorer's and the leading learner's base URLs, and a key
    with the ``score`` and ``label`` scopes."""

    scorer_url: str
    learner_url: str
    api_key: str
    concurrency: int = 32
    retries: int = 8
    timeout: float = 30.0


@dataclass
class Outcome:
    """What became of the delivered records (one count per answer kind)."""

    transactions: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    resumed_at: int = 0
    delivered: int = 0


def runs(records: Sequence[Record], start: int = 0) -> Iterator[tuple[int, int]]:
    """``(begin, end)`` index ranges of consecutive records of one kind, from ``start``.

    >>> kinds = ["transaction", "transaction", "label", "transaction"]
    >>> recs = [Record(k, "2026-01-01T00:00:00Z", {"transaction_id": "t"}) for k in kinds]
    >>> list(runs(recs)), list(runs(recs, 2))
    ([(0, 2), (2, 3), (3, 4)], [(2, 3), (3, 4)])
    """
    begin = start
    while begin < len(records):
        end = begin + 1
        while end < len(records) and records[end].kind == records[begin].kind:
            end += 1
        yield begin, end
        begin = end


class Progress:
    """The index of the first record not yet finished, kept beside the stream file."""

    def __init__(self, stream: Path) -> None:
        self.path = stream.with_name(stream.name + ".progress")
        stat = stream.stat()
        self.identity = {"size": stat.st_size, "name": stream.name}

    def load(self, total: int) -> int:
        """Where to resume (0 when there is no progress file or it names another file)."""
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return 0
        if saved.get("identity") != self.identity or not isinstance(saved.get("done"), int):
            return 0
        return max(0, min(int(saved["done"]), total))

    def save(self, done: int) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps({"identity": self.identity, "done": done}))
        os.replace(temporary, self.path)  # atomic: a crash leaves the old or the new file


async def backfill(
    records: Sequence[Record],
    target: Target,
    progress: Progress | None = None,
    tick: Callable[[int], None] | None = None,
) -> Outcome:
    """Deliver ``records`` (sorted by event time) in order; see the module text."""
    outcome = Outcome()
    start = progress.load(len(records)) if progress else 0
    outcome.resumed_at = start
    headers = {"X-API-Key": target.api_key, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=target.concurrency + 2)
    async with httpx.AsyncClient(headers=headers, timeout=target.timeout, limits=limits) as client:
        sender = _Sender(client, target)
        for begin, end in runs(records, start):
            chunk = records[begin:end]
            if chunk[0].kind == "transaction":
                await sender.transactions(chunk, outcome.transactions, tick)
            else:
                await sender.labels(chunk, outcome.labels, tick)
            outcome.delivered += end - begin
            if progress is not None:
                progress.save(end)
    return outcome


class _Sender:
    def __init__(self, client: httpx.AsyncClient, target: Target) -> None:
        self.client, self.target = client, target

    async def post(self, url: str, body: bytes) -> httpx.Response:
        """POST with retries on connection errors, 429 and 5xx (honouring Retry-After)."""
        failure = "no answer"
        for attempt in range(self.target.retries + 1):
            try:
                response = await self.client.post(url, content=body)
            except httpx.TransportError as exc:
                failure = type(exc).__name__
                await asyncio.sleep(min(5.0, 0.2 * 2.0**attempt))
                continue
            if response.status_code not in RETRY_STATUSES and response.status_code < 500:
                return response
            failure = f"HTTP {response.status_code}"
            await asyncio.sleep(_retry_after(response, attempt))
        raise BackfillError(f"{url} failed {self.target.retries + 1} times ({failure})")

    async def transactions(
        self, chunk: Sequence[Record], counts: Counter[str], tick: Callable[[int], None] | None
    ) -> None:
        url = self.target.scorer_url.rstrip("/") + "/v1/transactions"
        busy: set[str] = set()
        freed = asyncio.Condition()
        slots = asyncio.Semaphore(self.target.concurrency)

        async def one(record: Record, keys: tuple[str, str]) -> None:
            try:
                response = await self.post(url, record.payload())
                counts[_tx_outcome(response)] += 1
                if tick is not None:
                    tick(1)
            finally:
                async with freed:
                    busy.difference_update(keys)
                    freed.notify_all()
                slots.release()

        async with asyncio.TaskGroup() as group:
            for record in chunk:
                keys = ("c:" + str(record.data["card_id"]), "m:" + str(record.data["merchant_id"]))
                await slots.acquire()
                async with freed:
                    await freed.wait_for(lambda keys=keys: not busy.intersection(keys))  # type: ignore[misc]
                    busy.update(keys)
                group.create_task(one(record, keys))

    async def labels(
        self, chunk: Sequence[Record], counts: Counter[str], tick: Callable[[int], None] | None
    ) -> None:
        url = self.target.learner_url.rstrip("/") + "/v1/labels"
        for record in chunk:
            response = await self.post(url, record.payload())
            if response.status_code >= 400:
                counts[f"rejected_{response.status_code}"] += 1
            else:
                status = str(response.json().get("status"))
                if status == "accepted":
                    raise BackfillError(
                        "the learner URL answered 'accepted': it does not lead, so it cannot "
                        "say when a label is learned — give the leading learner's URL"
                    )
                counts[status] += 1
            if tick is not None:
                tick(1)


def _tx_outcome(response: httpx.Response) -> str:
    if response.status_code == 200:
        body: dict[str, Any] = response.json()
        return "replayed" if body.get("replayed") else "scored"
    return "conflict" if response.status_code == 409 else f"rejected_{response.status_code}"


def _retry_after(response: httpx.Response, attempt: int) -> float:
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return min(5.0, 0.2 * 2.0**attempt)
    return min(10.0, max(0.05, seconds))


async def wait_for_bundle(client: httpx.AsyncClient, target: Target, patience: float) -> int:
    """Wait until the scorer's models hold as many labels as the learner's; returns that count."""
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        learner, scorer = (
            await _learned(client, target.learner_url),
            await _learned(client, target.scorer_url),
        )
        if scorer >= learner:
            return scorer
        if asyncio.get_running_loop().time() > deadline:
            raise BackfillError(
                f"the scorer's models hold {scorer:,} labels, the learner's {learner:,}, after "
                f"{patience:.0f} s: is the learner publishing bundles?"
            )
        await asyncio.sleep(0.5)


async def _learned(client: httpx.AsyncClient, url: str) -> int:
    response = await client.get(url.rstrip("/") + "/v1/models")
    response.raise_for_status()
    models = response.json()["models"]
    return min(int(m["learned"]) for m in models)
