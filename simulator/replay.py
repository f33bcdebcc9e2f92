"""Replay a stream to a sink (or two), paced, keeping every label behind its transaction.

Records are sent concurrently (up to ``concurrency`` in flight) in stream order. A label is
sent only once its transaction has been acknowledged, so the service's "parked label" path
is not taken by accident; labels of transactions that were not accepted are skipped.

A :class:`Split` with a ``rate`` sends its share by its own schedule, open loop: its requests
(transactions and labels alike) are due ``1 / rate`` seconds apart, never before the replay
has read them, whatever became of the requests before them, each sent by one of a fixed set
of ``senders`` (so no more than ``senders`` requests are ever in flight). The latency of each
of its transactions is measured from the moment it was due, so a sender that is late because
the service is slow to answer the ones before counts its wait as latency (no coordinated
omission). The rest of the stream keeps in step: a record goes to the main sink once every
split request before it in the stream has been sent, so neither share runs days of event time
ahead of the other (the service would refuse the one left behind as late).

A ``hold`` (an async callable) is awaited before each record is read: a caller that replays
days of event time in minutes uses it to keep the stream from running ahead of what the
service has learned (a held split resumes its schedule from the moment it is released: the
wait is the replay's, not the service's, and no burst follows it).

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
from collections.abc import Awaitable, Callable, Iterable
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
    """Send ``share`` of the transactions (by a hash of their id) and their labels to ``sink``.

    With ``rate`` (requests per second) that share is replayed at that fixed rate, open loop,
    by ``senders`` tasks, independently of the rest of the stream and its pacing; without it,
    it shares the replay's pacing and ``concurrency`` with the main sink.
    """

    sink: Sink
    share: float
    rate: float | None = None
    senders: int = 16

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError("split share must be in [0, 1]")
        if self.rate is not None and not self.rate > 0:
            raise ValueError("split rate must be positive")
        if self.senders < 1:
            raise ValueError("split senders must be at least 1")


@dataclass
class ReplaySummary:
    """Counts of a finished replay. Outcomes: accepted, rejected, failed, skipped.

    ``latencies_ms``: for a split with a ``rate``, each of its transactions' latency, from the
    moment it was due to its outcome (retries included), in the order they were due.
    """

    by_kind: Counter[str] = field(default_factory=Counter)
    by_scenario: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_sink: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    details: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
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
    hold: Callable[[], Awaitable[None]] | None = None,
) -> ReplaySummary:
    """Send every record to ``sink`` (or, for ``split``'s share, to its sink) and count outcomes.

    The sinks must already be open (``async with``). ``hold`` is awaited before each record
    is read (see the module's docstring).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    run = _Run(sink, split, concurrency, hold)
    columns = (TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        run.task = bar.add_task("replay", total=total)
        run.bar = bar
        await run.all(records, pacing or Pacing())
    return run.summary


class _Run:
    def __init__(
        self,
        sink: Sink,
        split: Split | None,
        concurrency: int,
        hold: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.sink, self.split, self.hold = sink, split, hold
        self.slots = asyncio.Semaphore(concurrency)
        self.pending: dict[str, asyncio.Future[bool]] = {}
        self.not_accepted: set[str] = set()
        self.summary = ReplaySummary()
        self.timed: list[tuple[int, float]] = []
        self.bar: Progress | None = None
        self.task: Any = None

    async def all(self, records: Iterable[Record], pacing: Pacing) -> None:
        loop = asyncio.get_running_loop()
        started, first, index = loop.time(), None, 0
        tasks: set[asyncio.Task[None]] = set()
        lane = None
        if self.split is not None and self.split.rate is not None:
            lane = _Lane(self, self.split.rate, self.split.senders, started)
        try:
            for record in records:
                if self.hold is not None:
                    await self.hold()
                waiter = self._expect(record)
                if lane is not None and self._route(record.transaction_id) is lane.sink:
                    lane.put(record, waiter)
                    continue
                if lane is not None:
                    await lane.started_all()  # keep in step with the split in stream order
                moment = record.event_time.timestamp() if pacing.speedup else 0.0
                first = moment if first is None else first
                wait = started + pacing.delay_for(index, moment - first) - loop.time()
                index += 1
                if wait > 0.0005:
                    await asyncio.sleep(wait)
                await self.slots.acquire()
                task = loop.create_task(self._one(record, waiter))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if lane is not None:
                lane.close()
            await asyncio.gather(*tasks, *(lane.senders if lane is not None else ()))
        finally:
            # on an error or cancellation (Ctrl-C, SIGTERM) stop every request and wait for them
            # to unwind, so that the sinks are not closed under them
            running = [
                t for t in (*tasks, *(lane.senders if lane is not None else ())) if not t.done()
            ]
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            self.summary.latencies_ms = [ms for _, ms in sorted(self.timed)]
            self.summary.elapsed_s = loop.time() - started

    def _route(self, transaction_id: str) -> Sink:
        if self.split is not None and share_of(transaction_id) < self.split.share:
            return self.split.sink
        return self.sink

    def _expect(self, record: Record) -> asyncio.Future[bool] | None:
        """In stream order: a transaction's future outcome, or what a label has to wait for."""
        tx_id = record.transaction_id
        if record.kind != "transaction":
            return self.pending.get(tx_id)
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.pending[tx_id] = waiter
        return waiter

    async def _one(self, record: Record, waiter: asyncio.Future[bool] | None) -> None:
        try:
            await self.send(record, waiter)
        finally:
            self.slots.release()

    async def send(self, record: Record, waiter: asyncio.Future[bool] | None) -> None:
        try:
            if record.kind == "transaction":
                assert waiter is not None
                await self._transaction(record, waiter)
            else:
                await self._label(record, waiter)
        finally:
            if self.bar is not None:
                self.bar.advance(self.task)

    async def _transaction(self, record: Record, waiter: asyncio.Future[bool]) -> None:
        tx_id = record.transaction_id
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
            if not waiter.done():
                waiter.set_result(accepted)

    async def _label(self, record: Record, waiter: asyncio.Future[bool] | None) -> None:
        tx_id = record.transaction_id
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


_Item = tuple[int, float, Record, "asyncio.Future[bool] | None"]


class _Lane:
    """A split's share at a fixed rate, open loop, by a fixed set of sender tasks.

    Requests are due ``1 / rate`` seconds apart from ``started``, and never before the replay
    has read them: when the rest of the stream holds the reader back (the two shares keep in
    step), the schedule resumes from the moment the request is read instead of bursting to
    catch up — that wait is the replay's, not the service's. Each sender takes the next
    request in order, waits until it is due, sends it and only then takes another: never more
    than ``senders`` requests in flight, however slow the sink. A transaction's latency runs
    from its due time to its outcome, so any delay in sending it counts.
    """

    def __init__(self, run: _Run, rate: float, senders: int, started: float) -> None:
        assert run.split is not None
        self.run, self.sink, self.rate, self.started = run, run.split.sink, rate, started
        self.queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self.count = 0  # requests put
        self.last_due = started - 1.0 / rate
        self.started_count = 0  # requests taken by a sender at (or after) their due time
        self._reached: asyncio.Future[None] | None = None
        loop = asyncio.get_running_loop()
        self.senders = [loop.create_task(self._sender()) for _ in range(senders)]

    def put(self, record: Record, waiter: asyncio.Future[bool] | None) -> None:
        """Schedule ``record`` as the next request."""
        read_at = asyncio.get_running_loop().time()
        self.last_due = max(self.last_due + 1.0 / self.rate, read_at)
        self.queue.put_nowait((self.count, self.last_due, record, waiter))
        self.count += 1

    async def started_all(self) -> None:
        """Wait until every request put so far has been sent (or at least begun)."""
        while self.started_count < self.count:
            self._reached = asyncio.get_running_loop().create_future()
            await asyncio.wait([self._reached, *self.senders], return_when=asyncio.FIRST_COMPLETED)
            for sender in self.senders:
                if sender.done():  # a sender failed: do not wait for it forever
                    sender.result()
                    raise RuntimeError("a split sender stopped early")

    def close(self) -> None:
        for _ in self.senders:
            self.queue.put_nowait(None)

    async def _sender(self) -> None:
        loop = asyncio.get_running_loop()
        while (item := await self.queue.get()) is not None:
            k, due, record, waiter = item
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.started_count += 1
            if self._reached is not None and not self._reached.done():
                self._reached.set_result(None)
            await self.run.send(record, waiter)
            if record.kind == "transaction":
                self.run.timed.append((k, (loop.time() - due) * 1000.0))


async def _deliver(sink: Sink, record: Record) -> Delivery:
    """``sink.send``, with any unexpected error counted as a failure rather than lost."""
    try:
        return await sink.send(record)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return "failed", type(exc).__name__
