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

from app.core import adoption, chores, settlement
from app.core.decisions import WarmUp
from app.core.metrics import Metrics
from app.core.ports import (
    BundleStore,
    FeatureStore,
    Fenced,
    LabelEntry,
    Leadership,
    LearnerStore,
    LearnRow,
)
from app.core.promotion import Promotions
from app.core.publishing import CheckpointPolicy as CheckpointPolicy
from app.core.publishing import Publishing
from app.core.settlement import LabelStatus as LabelStatus
from app.core.settlement import transaction_from_payload as transaction_from_payload
from app.core.settlement import transaction_of as transaction_of
from features.schema import Label
from models import pool as model_pool

log = logging.getLogger(__name__)
# A submit picks up its early settlements one loop turn after its insert returns; more than
# this many kept means labels of other processes (no waiter here), which are dropped oldest first.
EARLY_MAX = 65_536


@dataclass
class _Job:
    claim: bool = False  # settle the received labels
    arrived: bool = False  # adopt parked labels whose transaction arrived


@dataclass
class Learner(Publishing):
    repository: LearnerStore
    pool: model_pool.ModelPool
    features: FeatureStore
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
    # settlements nobody waited for yet, kept while a submit's insert is in flight: the sweep
    # may settle its labels before the insert returns their seqs (see submit)
    _submitting: int = 0
    _early: dict[int, LabelStatus] = field(default_factory=dict)
    _claim_queued: bool = False
    _published: tuple[object, ...] | None = None  # what the last bundle shipped
    _late_fits: int = 0  # booster fits published between labels (see _housekeeping)
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
        self._submitting += 1  # announced before the insert, so no settlement is missed
        try:
            seqs = await self.repository.receive_labels(labels)
            if not self.leading:
                return ["accepted"] * len(seqs)
            futures = [self._waiter(seq) for seq in seqs]
        finally:
            self._submitting -= 1
            if not self._submitting:
                self._early.clear()
        if not self._claim_queued:
            self._claim_queued = True
            self._queue.put_nowait(_Job(claim=True))
        return list(await asyncio.gather(*futures))

    def _waiter(self, seq: int) -> asyncio.Future[LabelStatus]:
        """The future of label ``seq``: settled already when the sweep was faster than us."""
        future = self._waiting.setdefault(seq, asyncio.get_running_loop().create_future())
        early = self._early.pop(seq, None)
        if early is not None and not future.done():
            future.set_result(early)
            del self._waiting[seq]
        return future

    def _settled(self, seq: int, status: LabelStatus) -> None:
        waiting = self._waiting.pop(seq, None)
        if waiting is not None:
            if not waiting.done():
                waiting.set_result(status)
        elif self._submitting:
            self._early[seq] = status
            if len(self._early) > EARLY_MAX:  # labels of other processes, nobody's to pick up
                del self._early[next(iter(self._early))]

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

    def wake(self) -> None:
        """A promotion was requested on this process: a leader applies it now, not at the sweep."""
        if self.leading:
            self._queue.put_nowait(_Job())

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
        """Each step guarded (app.core.chores): one that fails stops none of the others."""
        if job.claim:
            self._claim_queued = False
            with self._step("claim"):
                await self._claim()
        if job.arrived:
            self._arrival_queued = False  # arrivals from now on need another pass
            with self._step("adopt"):
                await self._adopt_parked()
        await self._housekeeping()

    def _step(self, name: str) -> contextlib.AbstractContextManager[None]:
        return chores.guarded(name, self.metrics.learner_errors)

    async def _claim(self, batch: int = 1000) -> None:
        while True:
            received = await self.repository.received(batch)
            if received:
                statuses = await self._apply([r.label for r in received], [r.seq for r in received])
                for item, status in zip(received, statuses, strict=True):
                    self._settled(item.seq, status)
            if len(received) < batch:
                return
            # a backlog of received labels must not hold back bundles, checkpoints and the
            # policy between its batches: followers would score with models minutes old
            await self._housekeeping()

    async def _apply(self, labels: Sequence[Label], seqs: Sequence[int]) -> list[LabelStatus]:
        rows = await self.repository.for_learning([lb.transaction_id for lb in labels])
        current = {tx_id: row.label_is_fraud for tx_id, row in rows.items()}
        entries: list[LabelEntry] = []
        for label in labels:
            status = settlement.status_of(label, rows.get(label.transaction_id), current)
            entries.append(settlement.entry_of(label, status))
            if status in ("learned", "relabeled"):
                current[label.transaction_id] = label.is_fraud
        await self._learn(entries, rows, settled=list(zip(seqs, entries, strict=True)))
        return [e.status for e in entries]  # type: ignore[misc]

    async def _adopt_parked(self) -> None:
        parked = await self.repository.parked_ready()
        if not parked:
            return
        rows = await self.repository.for_learning(list({r.transaction_id for r in parked}))
        plan = adoption.settle(parked, rows)
        if plan.unreadable:  # its record went (detached, pruned) since parked_ready read it
            self.metrics.labels.labels("unreadable").inc(len(plan.unreadable))
        if plan.adopted or plan.superseded:
            entries = [e for _, e in plan.adopted]
            await self._learn(
                entries, rows, settled=plan.adopted, superseded=plan.superseded, adopted=True
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
                [
                    (settlement.label_of(e), transaction_of(rows[e.transaction_id]))
                    for e in learnable
                ]
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

    # ---- housekeeping ------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        if self.promotions is not None and await self.promotions.apply_requests(self._fence):
            self._bundle_at = 0.0  # every scorer gets the new champion in the next bundle
        # a booster fit that finished after the last label is published now, not at the next
        # label (after a backfill there may be none for hours): the next bundle ships it
        if self.pool.settle():  # never raises: a model's failure is counted in its own faults
            self._late_fits += 1
        now = time.monotonic()
        if now >= self._bundle_at:
            self._bundle_at = now + self.bundle_every_seconds
            with self._step("bundle"):
                await self.publish_bundle()
        if now >= self._next_expiry:
            self._next_expiry = now + 60
            cutoff = datetime.now(UTC) - self.parked_ttl
            with self._step("expiry"):
                expired = await self.repository.expire_parked(cutoff)
                if expired:
                    self.metrics.labels.labels("expired").inc(expired)
        due_labels = self._since_checkpoint >= self.checkpoints.every_labels
        due_time = (
            self._since_checkpoint and now - self._checkpoint_at >= self.checkpoints.every_seconds
        )
        if due_labels or due_time:
            with self._step("checkpoint"):
                await self.checkpoint()
        policy_due = self._since_policy >= self.policy_every_labels
        if self.promotions is not None and self.pool.policy.enabled and policy_due:
            self._since_policy = 0
            with self._step("policy"):
                await self.promotions.apply_policy()

    async def drain(self) -> None:
        """Finish queued jobs (used on shutdown, before the final checkpoint)."""
        while not self._queue.empty():
            with contextlib.suppress(Exception):
                await self._handle(self._queue.get_nowait())
