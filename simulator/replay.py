"""Replay a stream to a sink (or two), paced, keeping every label behind its transaction.

Records are sent concurrently (up to ``concurrency`` in flight) in stream order. A label is
sent only once its transaction has been acknowledged, so the service's "parked label" path
is not taken by accident; labels of transactions that were not accepted are skipped.

>>> Pacing(rate=100).delay_for(index=50, offset_s=0.0)
0.5
>>> Pacing(speedup=3600).delay_for(index=50, offset_s=7200.0)
2.0
>>> round(share_of("tx_7_000000001"), 3)
0.406
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from simulator.records import Record
from simulator.sinks import Delivery, Sink


def share_of(transaction_id: str) -> float:
    """A stable number in [0, 1) for a transaction id (the same in every process and run)."""
    digest = hashlib.blake2b(transaction_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True)
class Pacing:
    """``rate`` events per wall-clock second, or event time sped up ``speedup`` times, or neither
    (as fast as the sink allows)."""

    rate: float | None = None
    speedup: float | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and self.speedup is not None:
            raise ValueError("give either a rate or a speedup, not both")
        if (self.rate is not None and self.rate <= 0) or (
            self.speedup is not None and self.speedup <= 0
        ):
            raise ValueError("rate and speedup must be positive")

    def delay_for(self, index: int, offset_s: float) -> float:
        """Seconds from the start until record ``index`` (``offset_s`` into event time) is due."""
        if self.rate is not None:
            return index / self.rate
        if self.speedup is not None:
            return offset_s / self.speedup
        return 0.0


@dataclass(frozen=True)
class Split:
    """Send ``share`` of the transactions (by a hash of their id) and their labels to ``sink``."""

    sink: Sink
    share: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError("split share must be in [0, 1]")


@dataclass
class ReplaySummary:
    """Counts of a finished replay. Outcomes: accepted, rejected, failed, skipped."""

    by_kind: Counter[str] = field(default_factory=Counter)
    by_scenario: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_sink: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    details: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def total(self, outcome: str) -> int:
        return sum(counts[outcome] for counts in self.outcomes.values())

    @property
    def records(self) -> int:
        return sum(self.by_kind.values())

    @property
    def failed(self) -> int:
        return self.total("failed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "elapsed_s": round(self.elapsed_s, 3),
            "by_kind": dict(self.by_kind),
            "by_scenario": dict(self.by_scenario),
            "outcomes": {kind: dict(c) for kind, c in self.outcomes.items()},
            "by_sink": {name: dict(c) for name, c in self.by_sink.items()},
            "details": dict(self.details),
        }


async def replay(
    records: Iterable[Record],
    sink: Sink,
    *,
    split: Split | None = None,
    pacing: Pacing | None = None,
    concurrency: int = 32,
    progress: bool = False,
    total: int | None = None,
) -> ReplaySummary:
    """Send every record to ``sink`` (or, for ``split``'s share, to its sink) and count outcomes.

    The sinks must already be open (``async with``).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    run = _Run(sink, split, concurrency)
    columns = (TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        run.task = bar.add_task("replay", total=total)
        run.bar = bar
        await run.all(records, pacing or Pacing())
    return run.summary


class _Run:
    def __init__(self, sink: Sink, split: Split | None, concurrency: int) -> None:
        self.sink, self.split = sink, split
        self.slots = asyncio.Semaphore(concurrency)
        self.pending: dict[str, asyncio.Future[bool]] = {}
        self.not_accepted: set[str] = set()
        self.summary = ReplaySummary()
        self.bar: Progress | None = None
        self.task: Any = None

    async def all(self, records: Iterable[Record], pacing: Pacing) -> None:
        loop = asyncio.get_running_loop()
        started, first = loop.time(), None
        tasks: set[asyncio.Task[None]] = set()
        try:
            for index, record in enumerate(records):
                moment = record.event_time.timestamp() if pacing.speedup else 0.0
                first = moment if first is None else first
                wait = started + pacing.delay_for(index, moment - first) - loop.time()
                if wait > 0.0005:
                    await asyncio.sleep(wait)
                await self.slots.acquire()
                task = loop.create_task(self._one(record))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            self.summary.elapsed_s = loop.time() - started

    def _route(self, transaction_id: str) -> Sink:
        if self.split is not None and share_of(transaction_id) < self.split.share:
            return self.split.sink
        return self.sink

    async def _one(self, record: Record) -> None:
        try:
            if record.kind == "transaction":
                await self._transaction(record)
            else:
                await self._label(record)
        finally:
            self.slots.release()
            if self.bar is not None:
                self.bar.advance(self.task)

    async def _transaction(self, record: Record) -> None:
        tx_id = record.transaction_id
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.pending[tx_id] = waiter
        accepted = False
        try:
            sink = self._route(tx_id)
            outcome, detail = await _deliver(sink, record)
            self._count(record, sink.name, outcome, detail)
            accepted = outcome == "accepted"
        finally:
            if accepted:
                self.not_accepted.discard(tx_id)
            else:
                self.not_accepted.add(tx_id)
            if self.pending.get(tx_id) is waiter:
                del self.pending[tx_id]
            waiter.set_result(accepted)

    async def _label(self, record: Record) -> None:
        tx_id = record.transaction_id
        waiter = self.pending.get(tx_id)
        if waiter is not None:
            await waiter  # its transaction is still in flight: send the label after the ack
        sink = self._route(tx_id)
        if tx_id in self.not_accepted:
            self._count(record, sink.name, "skipped", "transaction_not_accepted")
            return
        outcome, detail = await _deliver(sink, record)
        self._count(record, sink.name, outcome, detail)

    def _count(self, record: Record, sink: str, outcome: str, detail: str) -> None:
        summary = self.summary
        summary.by_kind[record.kind] += 1
        if record.kind == "transaction":
            truth = record.truth
            summary.by_scenario["unknown" if truth is None else truth.scenario or "legit"] += 1
        summary.outcomes[record.kind][outcome] += 1
        summary.by_sink[sink][outcome] += 1
        summary.details[detail] += 1


async def _deliver(sink: Sink, record: Record) -> Delivery:
    """``sink.send``, with any unexpected error counted as a failure rather than lost."""
    try:
        return await sink.send(record)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return "failed", type(exc).__name__
