"""``riverguard history backfill``: start a running deployment warm from a record stream.

The history goes through the service's own path, in the order it happened, on two lanes:

* transactions are POSTed to a scorer, many at once but never two of one card or one merchant
  at once (their features depend on each other's order);
* labels are POSTed in stream order, in batches, to the *leading learner*
  (``/v1/labels/batch``), which answers once it has learned them and updated the
  label-derived features.

Between the lanes, exactly what an offline replay would see: a label is sent only when every
transaction before it in the stream is stored, and a transaction waits until every outcome
before it that changes its card's or its merchant's features (a fraud label, or a label
after a fraud label of the same transaction) is learned. The learner learns in stream order.

Progress is saved twice a second (``<file>.progress``: everything before that position is
stored and learned), so a re-run after a crash resumes there; what had been delivered after
it is replayed harmlessly (one id is one record, a label is learned once). At the end the
command waits until the scorer scores with a bundle that holds every label and the booster
fit the learner publishes once it finishes (a fit started by the history's last days).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from features.schema import MAX_LABEL_BATCH
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
    """Deliver ``records`` (sorted by event time); see the module text."""
    start = progress.load(len(records)) if progress else 0
    outcome = Outcome(resumed_at=start)
    headers = {"X-API-Key": target.api_key, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=target.concurrency + 2)
    async with httpx.AsyncClient(headers=headers, timeout=target.timeout, limits=limits) as client:
        plan = _Plan(records, start, _Sender(client, target), outcome, tick)
        async with asyncio.TaskGroup() as group:
            group.create_task(plan.transactions())
            group.create_task(plan.labels())
            if progress is not None:
                group.create_task(plan.save_progress(progress))
    if progress is not None:
        progress.save(len(records))
    outcome.delivered = len(records) - start
    return outcome


class _Plan:
    """The two lanes and the conditions between them (indices are stream positions).

    A transaction waits for every outcome before it in the stream that changes its card's or
    its merchant's features (a fraud label, or a label after a fraud label of the same
    transaction) to be learned; a label waits until every transaction before it is stored.
    """

    def __init__(
        self,
        records: Sequence[Record],
        start: int,
        sender: _Sender,
        outcome: Outcome,
        tick: Callable[[int], None] | None,
    ) -> None:
        self.records, self.start, self.sender, self.outcome = records, start, sender, outcome
        self.tick = tick or (lambda n: None)
        self.changed = asyncio.Condition()
        self.stored_below = start  # every transaction before this index is stored
        self.learned_below = start  # every label before this index is learned
        self.done_tx: set[int] = set()
        self.busy: set[str] = set()
        self.blockers: dict[str, list[int]] = {}  # entity key -> unlearned changing labels
        self.label_keys: dict[int, tuple[str, str]] = {}
        keys: dict[str, tuple[str, str]] = {}
        fraud: set[str] = set()
        for index, record in enumerate(records):
            if record.kind == "transaction":
                keys[record.transaction_id] = _keys(record)
                continue
            tx_id, is_fraud = record.transaction_id, bool(record.data.get("is_fraud"))
            changes = is_fraud or tx_id in fraud
            if is_fraud:
                fraud.add(tx_id)
            if changes and index >= start and tx_id in keys:
                self.label_keys[index] = keys[tx_id]
                for key in keys[tx_id]:
                    self.blockers.setdefault(key, []).append(index)

    async def transactions(self) -> None:
        slots = asyncio.Semaphore(self.sender.target.concurrency)
        async with asyncio.TaskGroup() as group:
            for index in range(self.start, len(self.records)):
                record = self.records[index]
                if record.kind != "transaction":
                    continue
                keys = _keys(record)
                await slots.acquire()
                async with self.changed:
                    await self.changed.wait_for(functools.partial(self._free, keys, index))
                    self.busy.update(keys)
                group.create_task(self._one(index, record, keys, slots))
        async with self.changed:
            self.stored_below = len(self.records)
            self.changed.notify_all()

    def _stored_past(self, index: int) -> bool:
        return self.stored_below > index

    def _free(self, keys: tuple[str, str], index: int) -> bool:
        if self.busy.intersection(keys):
            return False
        return all(not self.blockers.get(k) or self.blockers[k][0] > index for k in keys)

    async def _one(
        self, index: int, record: Record, keys: tuple[str, str], slots: asyncio.Semaphore
    ) -> None:
        try:
            response = await self.sender.post(self.sender.tx_url, record.payload())
            self.outcome.transactions[_tx_outcome(response)] += 1
            self.tick(1)
        finally:
            slots.release()
            async with self.changed:
                self.busy.difference_update(keys)
                self.done_tx.add(index)
                self._advance_stored()
                self.changed.notify_all()

    def _advance_stored(self) -> None:
        below = self.stored_below
        while below < len(self.records) and (
            self.records[below].kind != "transaction" or below in self.done_tx
        ):
            self.done_tx.discard(below)
            below += 1
        self.stored_below = below

    async def labels(self) -> None:
        index = self.start
        while index < len(self.records):
            if self.records[index].kind != "label":
                index += 1
                continue
            async with self.changed:
                await self.changed.wait_for(functools.partial(self._stored_past, index))
                ready = self.stored_below
            batch: list[int] = []
            end = index
            while end < min(ready, len(self.records)) and len(batch) < MAX_LABEL_BATCH:
                if self.records[end].kind == "label":
                    batch.append(end)
                end += 1
            await self._send_labels(batch)
            async with self.changed:
                self.learned_below = end
                for position in batch:
                    for key in self.label_keys.pop(position, ()):
                        self.blockers[key].remove(position)  # the front: labels go in order
                self.changed.notify_all()
            self.tick(len(batch))
            index = end
        async with self.changed:  # no label left: the records after the last one need none
            self.learned_below = len(self.records)
            self.changed.notify_all()

    async def _send_labels(self, batch: list[int]) -> None:
        body = b"[" + b",".join(self.records[i].payload() for i in batch) + b"]"
        response = await self.sender.post(self.sender.labels_url, body)
        if response.status_code >= 400:
            raise BackfillError(
                f"the learner refused a batch of labels (HTTP {response.status_code})"
            )
        for item in response.json()["labels"]:
            if item["status"] == "accepted":
                raise BackfillError(
                    "the learner URL answered 'accepted': it does not lead, so it cannot "
                    "say when a label is learned — give the leading learner's URL"
                )
            self.outcome.labels[str(item["status"])] += 1

    async def save_progress(self, progress: Progress) -> None:
        """Every half second: everything before min(stored, learned) is finished."""
        while True:
            await asyncio.sleep(0.5)
            async with self.changed:
                done = min(self.stored_below, self.learned_below)
            progress.save(done)
            if done >= len(self.records):
                return


def _keys(record: Record) -> tuple[str, str]:
    return "c:" + str(record.data["card_id"]), "m:" + str(record.data["merchant_id"])


class _Sender:
    def __init__(self, client: httpx.AsyncClient, target: Target) -> None:
        self.client, self.target = client, target
        self.tx_url = target.scorer_url.rstrip("/") + "/v1/transactions"
        self.labels_url = target.learner_url.rstrip("/") + "/v1/labels/batch"

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
    """Wait until the scorer's models hold as many labels as the learner's, and the booster
    fits the learner publishes between labels (:func:`_boosters`) too; returns that count."""
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        learner = await _models(client, target.learner_url)
        scorer = await _models(client, target.scorer_url)
        held, wanted = _learned(scorer), _learned(learner)
        fitting, behind = _boosters(learner, scorer)
        if held >= wanted and not fitting and not behind:
            return held
        if asyncio.get_running_loop().time() > deadline:
            waiting = f"{held:,} labels, the learner's {wanted:,}"
            if fitting or behind:
                waiting += f"; booster fits of {', '.join(sorted(set(fitting + behind)))} pending"
            raise BackfillError(
                f"the scorer's models hold {waiting}, after {patience:.0f} s: is the learner "
                "publishing bundles?"
            )
        await asyncio.sleep(0.5)


async def _models(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    response = await client.get(url.rstrip("/") + "/v1/models")
    response.raise_for_status()
    models: list[dict[str, Any]] = response.json()["models"]
    return models


def _learned(models: list[dict[str, Any]]) -> int:
    return min(int(m["learned"]) for m in models)


def _boosters(
    learner: list[dict[str, Any]], scorer: list[dict[str, Any]]
) -> tuple[list[str], list[str]]:
    """Models whose booster fit the learner will publish without more labels (``settling``:
    the service's boosters, after the last label of the history), and models whose booster
    on the scorer is behind the learner's (fewer fits)."""
    fits = {m["name"]: m["booster"].get("fits", 0) for m in scorer if m.get("booster")}
    fitting, behind = [], []
    for model in learner:
        booster = model.get("booster") or {}
        if booster.get("settling"):
            fitting.append(str(model["name"]))
        elif fits.get(model["name"], booster.get("fits", 0)) < booster.get("fits", 0):
            behind.append(str(model["name"]))
    return fitting, behind
