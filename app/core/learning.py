"""The learning use-case and the one task that mutates the models.

River models are not thread-safe and learning must happen once per label, so every label —
from REST, Kafka, or a parked label whose transaction has arrived — goes through one queue
consumed by one task. Order per label: label-derived features in Redis (idempotent), the label
and learning-log rows in Postgres (one transaction), then ``learn_one`` on every model from the
feature snapshot stored at scoring time. A crash after the commit loses nothing: a restart
restores the latest checkpoint and re-learns the log after it.

The same task applies the automatic promotion policy (``RIVERGUARD_SCORING__AUTO_PROMOTE``)
every ``policy_every_labels`` learned labels: the decision, promote or not, is kept with its
explanation (``GET /v1/models``), and a promotion is recorded like a manual one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from app.core import bundles
from app.core.decisions import WarmUp
from app.core.metrics import Metrics
from app.core.ports import (
    BundleStore,
    Fenced,
    LabelEntry,
    Leadership,
    LearnerStore,
    LearnRow,
    ParkedLabel,
)
from app.core.promotion import Promotions
from features import store as feature_store
from features.schema import Label, Transaction
from models import pool as model_pool

log = logging.getLogger(__name__)
#: A label's status as answered: settled by the leading learner of this process, or
#: ``accepted`` — durable, to be settled by the learner that leads (another process).
LabelStatus = Literal["learned", "duplicate", "parked", "relabeled", "accepted"]


@dataclass
class _Job:
    claim: bool = False  # settle the received labels
    arrived: bool = False  # adopt parked labels whose transaction arrived


@dataclass
class CheckpointPolicy:
    every_labels: int = 1000
    every_seconds: float = 60.0
    feature_set: str = ""


@dataclass
class Learner:
    repository: LearnerStore
    pool: model_pool.ModelPool
    features: feature_store.FeatureStore
    metrics: Metrics
    checkpoints: CheckpointPolicy
    parked_ttl: timedelta = timedelta(days=90)
    sweep_seconds: float = 1.0
    policy_every_labels: int = 1000
    promotions: Promotions | None = None  # the automatic policy runs only when given
    warmup: WarmUp | None = None  # told the champion's progress after every learned batch
    leadership: Leadership | None = None  # None: this learner always leads (one process)
    candidate: bool = True  # False: a scorer-only process, which never learns
    bundles: BundleStore | None = None  # where the leader publishes its models for followers
    bundle_every_seconds: float = 5.0
    epoch: int = 0
    last_learn_seq: int = 0
    _waiting: dict[int, asyncio.Future[LabelStatus]] = field(default_factory=dict)
    _claim_queued: bool = False
    _published: int = -1
    _bundle_at: float = 0.0
    _queue: asyncio.Queue[_Job] = field(default_factory=asyncio.Queue)
    _since_checkpoint: int = 0
    _checkpoint_at: float = field(default_factory=time.monotonic)
    _next_expiry: float = 0.0
    _arrival_queued: bool = False  # an adoption pass is queued and has not started yet
    _since_policy: int = 0

    # ---- API used by the routes and the labels worker --------------------------------
    @property
    def leading(self) -> bool:
        return self.candidate and (self.leadership is None or self.leadership.leading)

    async def submit(self, labels: Sequence[Label]) -> list[LabelStatus]:
        """Record labels durably; when this process leads, wait for each one's settlement.

        A scorer that does not lead answers ``accepted``: the leading learner (another
        process) claims the labels in order and learns each exactly once.
        """
        seqs = await self.repository.receive_labels(labels)
        if not self.leading:
            return ["accepted"] * len(seqs)
        loop = asyncio.get_running_loop()
        futures = [self._waiting.setdefault(seq, loop.create_future()) for seq in seqs]
        if not self._claim_queued:
            self._claim_queued = True
            self._queue.put_nowait(_Job(claim=True))
        return list(await asyncio.gather(*futures))

    def claim_soon(self) -> None:
        """Labels were recorded elsewhere (a review verdict): a leader claims them now."""
        if self.leading and not self._claim_queued:
            self._claim_queued = True
            self._queue.put_nowait(_Job(claim=True))

    def notify_arrived(self, transaction_ids: Sequence[str]) -> None:
        """Transactions were stored: parked labels for them can be learned now.

        Arrivals coalesce: while one adoption pass is queued and not yet started, it covers
        every later arrival too, so a busy service runs one parked-label query at a time.
        """
        if not self._arrival_queued:
            self._arrival_queued = True
            self._queue.put_nowait(_Job(arrived=True))

    # ---- the owner task ---------------------------------------------------------------
    async def run(self) -> None:
        """Lead (or wait to lead), learn, and step down when fenced; forever."""
        if not self.candidate:
            return
        while True:
            if self.leadership is not None and not self.leadership.leading:
                await self.leadership.acquire()
                await self._took_over()
            try:
                await self._lead()
            except Fenced as exc:
                log.error("stepping down: %s", exc)
            finally:
                self._release_waiters()
                if self.leadership is not None:
                    self.metrics.learner_leading.set(0)
                    await self.leadership.release()
            if self.leadership is None:
                return

    async def try_to_lead(self) -> bool:
        """At start: lead at once if no other learner does (else run() waits as a standby)."""
        if not self.candidate:
            return False
        if self.leadership is None:
            return True
        if await self.leadership.try_acquire():
            await self._took_over()
            return True
        log.info("another learner leads; this one waits as a standby")
        return False

    async def _took_over(self) -> None:
        assert self.leadership is not None
        self.epoch = self.leadership.epoch
        self.metrics.learner_leading.set(1)
        self.metrics.learner_epoch.set(self.epoch)
        relearned = await self.catch_up()
        log.info("leading at epoch %d; caught up %d labels", self.epoch, relearned)
        await self.publish_bundle()

    async def _lead(self) -> None:
        while self.leading:
            try:
                async with asyncio.timeout(self.sweep_seconds):
                    job = await self._queue.get()
            except TimeoutError:
                job = _Job(claim=True, arrived=True)  # labels received by other processes
            try:
                await self._handle(job)
            except (asyncio.CancelledError, Fenced):
                raise
            except Exception:
                log.exception("learning job failed")

    def _release_waiters(self) -> None:
        """Labels waited on here are durable: the next leader settles them."""
        for future in self._waiting.values():
            if not future.done():
                future.set_result("accepted")
        self._waiting.clear()

    async def _handle(self, job: _Job) -> None:
        if job.claim:
            self._claim_queued = False
            await self._claim()
        if job.arrived:
            self._arrival_queued = False  # arrivals from now on need another pass
            await self._adopt_parked()
        await self._housekeeping()

    async def _claim(self, batch: int = 1000) -> None:
        while True:
            received = await self.repository.received(batch)
            if received:
                statuses = await self._apply([r.label for r in received], [r.seq for r in received])
                for item, status in zip(received, statuses, strict=True):
                    waiting = self._waiting.pop(item.seq, None)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(status)
            # a backlog of received labels must not hold back bundles, checkpoints and the
            # policy: followers would score with models minutes old (seen in the split demo)
            await self._housekeeping()
            if len(received) < batch:
                return

    async def _apply(self, labels: Sequence[Label], seqs: Sequence[int]) -> list[LabelStatus]:
        rows = await self.repository.for_learning([lb.transaction_id for lb in labels])
        current = {tx_id: row.label_is_fraud for tx_id, row in rows.items()}
        entries: list[LabelEntry] = []
        for label in labels:
            status = _status(label, rows.get(label.transaction_id), current)
            entries.append(_entry(label, status))
            if status in ("learned", "relabeled"):
                current[label.transaction_id] = label.is_fraud
        await self._learn(entries, rows, settled=list(zip(seqs, entries, strict=True)))
        return [e.status for e in entries]  # type: ignore[misc]

    async def _adopt_parked(self) -> None:
        parked = await self.repository.parked_ready()
        if not parked:
            return
        newest: dict[str, ParkedLabel] = {}
        for row in parked:  # ordered by seq: the last one per transaction wins
            newest[row.transaction_id] = row
        superseded = [r.seq for r in parked if newest[r.transaction_id].seq != r.seq]
        rows = await self.repository.for_learning(list(newest))
        adopted = []
        for tx_id, row in newest.items():
            label = Label(
                transaction_id=tx_id,
                is_fraud=row.is_fraud,
                labeled_at=row.labeled_at,
                source=row.source,
            )
            status: LabelStatus = "learned" if rows[tx_id].label_is_fraud is None else "relabeled"
            adopted.append((row.seq, _entry(label, status)))
        await self._learn(
            [e for _, e in adopted], rows, settled=adopted, superseded=superseded, adopted=True
        )

    async def _learn(
        self,
        entries: list[LabelEntry],
        rows: dict[str, LearnRow],
        settled: list[tuple[int, LabelEntry]],
        superseded: Sequence[int] = (),
        adopted: bool = False,
    ) -> None:
        learnable = [e for e in entries if e.learn]
        if learnable:
            await self.features.apply_labels(
                [(_label(e), transaction_of(rows[e.transaction_id])) for e in learnable]
            )
        if adopted:
            seqs = await self.repository.adopt_parked(settled, superseded, self.epoch)
        else:
            seqs = await self.repository.settle_labels(settled, self.epoch)
        for index, (entry, seq) in enumerate(zip(entries, seqs, strict=True)):
            if index and index % 64 == 0:
                await asyncio.sleep(0)  # learning a big batch must not stall scoring
            self.metrics.labels.labels(entry.status).inc()
            if seq is None:
                continue
            row = rows[entry.transaction_id]
            scored = row.scores if entry.evaluate else {}
            at = entry.labeled_at.timestamp()
            self.pool.learn(row.features, entry.is_fraud, scored, parts=row.parts, at=at)
            delay = (entry.labeled_at - row.event_time).total_seconds()
            self.metrics.label_delay.observe(max(delay, 0.0))
            self.last_learn_seq = max(self.last_learn_seq, seq)
            self.metrics.learning_log_head.set(self.last_learn_seq)
            self._since_checkpoint += 1
            self._since_policy += 1
        if self.warmup is not None:
            self.warmup.observe_pool(self.pool)

    # ---- checkpoints, expiry, restore ----------------------------------------------------
    async def publish_bundle(self) -> None:
        """Publish the models at the current log position (followers load them)."""
        if self.bundles is None or self.last_learn_seq == self._published:
            return
        seq = self.last_learn_seq
        blob = await bundles.pack_off_loop(self.pool, self.checkpoints.feature_set, seq)
        await self.bundles.publish(seq, blob)
        self._published = seq
        self.metrics.bundle_published.set(seq)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._bundle_at:
            self._bundle_at = now + self.bundle_every_seconds
            await self.publish_bundle()
        if now >= self._next_expiry:
            self._next_expiry = now + 60
            cutoff = datetime.now(UTC) - self.parked_ttl
            expired = await self.repository.expire_parked(cutoff)
            if expired:
                self.metrics.labels.labels("expired").inc(expired)
        due_labels = self._since_checkpoint >= self.checkpoints.every_labels
        due_time = (
            self._since_checkpoint and now - self._checkpoint_at >= self.checkpoints.every_seconds
        )
        if due_labels or due_time:
            await self.checkpoint()
        policy_due = self._since_policy >= self.policy_every_labels
        if self.promotions is not None and self.pool.policy.enabled and policy_due:
            self._since_policy = 0
            await self.promotions.apply_policy()

    async def checkpoint(self) -> None:
        """Snapshot every model at the current learning-log position."""
        for name in self.pool.names():
            # a forest pickles for about a second: off the loop, so requests keep being answered
            blob = await bundles.snapshot_off_loop(
                self.pool, name, self.checkpoints.feature_set, self.last_learn_seq
            )
            await self.repository.save_snapshot(
                name,
                self.pool.version_of(name),
                self.last_learn_seq,
                self.checkpoints.feature_set,
                {"labels_learned": self.last_learn_seq},
                blob,
                self.epoch if self.leadership is not None else None,
            )
            self.metrics.checkpoints.labels(name).inc()
        self._since_checkpoint = 0
        self._checkpoint_at = time.monotonic()

    async def restore(self) -> int:
        """Load the newest snapshots and re-learn the log after them; return labels re-learned."""
        start = await self._load_snapshots()
        relearned = 0
        async for seq, row, is_fraud, evaluate, at in self.repository.learn_log_after(start):
            scored = row.scores if evaluate else {}
            self.pool.learn(row.features, is_fraud, scored, parts=row.parts, at=at.timestamp())
            self.last_learn_seq = seq
            relearned += 1
        self.last_learn_seq = max(self.last_learn_seq, start)
        if self.warmup is not None:
            self.warmup.observe_pool(self.pool)
        return relearned

    async def catch_up(self) -> int:
        """Learn the log written since this process last learned (a standby taking over)."""
        relearned = 0
        async for seq, row, is_fraud, evaluate, at in self.repository.learn_log_after(
            self.last_learn_seq
        ):
            scored = row.scores if evaluate else {}
            self.pool.learn(row.features, is_fraud, scored, parts=row.parts, at=at.timestamp())
            self.last_learn_seq = seq
            relearned += 1
        self.metrics.learning_log_head.set(self.last_learn_seq)
        if self.warmup is not None:
            self.warmup.observe_pool(self.pool)
        return relearned

    async def _load_snapshots(self) -> int:
        found = {name: await self.repository.latest_snapshot(name) for name in self.pool.names()}
        seqs = {snap[0] for snap in found.values() if snap is not None}
        if not seqs or None in found.values() or len(seqs) != 1:
            if seqs:
                log.warning("snapshots are incomplete or at different positions; relearning all")
            return 0
        for name, snap in found.items():
            assert snap is not None
            try:
                self.pool.restore(name, snap[1], self.checkpoints.feature_set)
            except Exception:
                log.exception("snapshot of %s refused; relearning every model from the log", name)
                self.pool.reset()
                return 0
        return seqs.pop()

    async def drain(self) -> None:
        """Finish queued jobs (used on shutdown, before the final checkpoint)."""
        while not self._queue.empty():
            with contextlib.suppress(Exception):
                await self._handle(self._queue.get_nowait())


def _status(label: Label, row: LearnRow | None, current: dict[str, bool | None]) -> LabelStatus:
    if row is None:
        return "parked"
    known = current.get(label.transaction_id)
    if known is None:
        return "learned"
    return "duplicate" if known == label.is_fraud else "relabeled"


def _entry(label: Label, status: LabelStatus) -> LabelEntry:
    return LabelEntry(
        transaction_id=label.transaction_id,
        is_fraud=label.is_fraud,
        labeled_at=label.labeled_at,
        source=label.source,
        status=status,
        learn=status in ("learned", "relabeled"),
        evaluate=status == "learned",
    )


def _label(entry: LabelEntry) -> Label:
    return Label(
        transaction_id=entry.transaction_id,
        is_fraud=entry.is_fraud,
        labeled_at=entry.labeled_at,
        source=entry.source,
    )


def transaction_of(row: LearnRow) -> Transaction:
    """Rebuild the wire record from its stored canonical payload."""
    return transaction_from_payload(row.payload)


def transaction_from_payload(payload: dict[str, Any]) -> Transaction:
    data = dict(payload)
    data["amount"] = Decimal(str(data["amount"]))
    return Transaction.model_validate(data)
