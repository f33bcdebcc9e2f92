"""The learner's durable side: bundles for followers, checkpoints, restore and catch-up.

A mixin of :class:`app.core.learning.Learner` (the owner task): these methods run only on it,
so nothing learns while they read the pool. Bundles are published every few seconds for the
processes that do not learn; checkpoints go to Postgres on a slower clock; a restart loads the
newest checkpoint and re-learns the log after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from app.core import bundles
from app.core.decisions import WarmUp
from app.core.metrics import Metrics
from app.core.ports import BundleStore, Fenced, Leadership, LearnerStore
from models import pool as model_pool

log = logging.getLogger(__name__)
YIELD_EVERY = 64  # rows re-learned between two turns of the event loop, at most
YIELD_SECONDS = 0.01  # or this much learning, whichever comes first


@dataclass
class CheckpointPolicy:
    every_labels: int = 1000
    every_seconds: float = 60.0
    feature_set: str = ""


class Publishing:
    """Publishing, checkpointing and restoring the learner's pool (fields set by ``Learner``)."""

    repository: LearnerStore
    pool: model_pool.ModelPool
    metrics: Metrics
    checkpoints: CheckpointPolicy
    warmup: WarmUp | None
    leadership: Leadership | None
    bundles: BundleStore | None
    epoch: int
    last_learn_seq: int
    _published: tuple[object, ...] | None
    _late_fits: int  # fits published between labels (they change the models, not the log)
    _since_checkpoint: int
    _checkpoint_at: float

    @property
    def _fence(self) -> int | None:
        """The epoch a write is fenced by (None: one process, no leadership)."""
        return self.epoch if self.leadership is not None else None

    def _lineup(self) -> tuple[object, ...]:
        """What a bundle ships: the log position, the champion, every member's version and
        the fits published between labels."""
        versions = tuple((name, self.pool.version_of(name)) for name in self.pool.names())
        return (self.last_learn_seq, self.pool.champion, versions, self._late_fits)

    async def publish_bundle(self) -> None:
        """Publish the models for followers, only when something in them moved.

        A bundle is a copy of every model: an unchanged one is not published again (an idle
        learner writes nothing), unless Redis lost the newest (flushed, restarted empty).
        """
        if self.bundles is None:
            return
        lineup = self._lineup()
        if lineup == self._published and await self.bundles.latest() is not None:
            return
        seq = self.last_learn_seq
        blob = await bundles.pack_off_loop(self.pool, self.checkpoints.feature_set, seq)
        if not await self.bundles.publish(seq, blob, self.epoch):
            await self._refused(seq, blob)
        self._published = lineup
        self.metrics.bundle_published.set(seq)

    async def _refused(self, seq: int, blob: bytes) -> None:
        """The store's fence refused the bundle: a newer epoch published. Stale: step down.

        Postgres, not Redis, says who leads: when it confirms this epoch, the fence in Redis
        is from an earlier database (a reset stack) and this leader's bundle overrides it.
        """
        assert self.bundles is not None
        if self.leadership is not None and not await self.leadership.confirm():
            raise Fenced(f"bundle at epoch {self.epoch} refused: a newer leader published")
        log.warning("bundle fence in Redis is ahead of the database; overriding it")
        await self.bundles.publish(seq, blob, self.epoch, force=True)

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
                self._fence,
            )
            self.metrics.checkpoints.labels(name).inc()
        self._since_checkpoint = 0
        self._checkpoint_at = time.monotonic()

    async def restore(self) -> int:
        """Load the newest snapshots and re-learn the log after them; return labels re-learned."""
        start = await self._load_snapshots()
        relearned = await self._relearn(start)
        self.last_learn_seq = max(self.last_learn_seq, start)
        if self.warmup is not None:
            self.warmup.observe_pool(self.pool)
        return relearned

    async def catch_up(self) -> int:
        """Learn the log written since this process last learned (a standby taking over)."""
        relearned = await self._relearn(self.last_learn_seq)
        self.metrics.learning_log_head.set(self.last_learn_seq)
        if self.warmup is not None:
            self.warmup.observe_pool(self.pool)
        return relearned

    async def _relearn(self, after: int) -> int:
        """Learn the log after ``after``, yielding to the loop every few rows.

        A takeover re-learns up to a checkpoint interval of labels (thousands, a page of the
        log at a time) while this process answers requests and renews its lease on the same
        loop: a page learned in one go would stall both for seconds (and a stalled renewal
        loses a healthy leadership). Every ``YIELD_EVERY`` rows, or ``YIELD_SECONDS`` of
        learning, the loop runs whatever waits.
        """
        relearned, since = 0, time.perf_counter()
        async for seq, row, is_fraud, evaluate, at in self.repository.learn_log_after(after):
            scored = row.scores if evaluate else {}
            self.pool.learn(row.features, is_fraud, scored, parts=row.parts, at=at.timestamp())
            self.last_learn_seq = seq
            relearned += 1
            if relearned % YIELD_EVERY == 0 or time.perf_counter() - since >= YIELD_SECONDS:
                await asyncio.sleep(0)
                since = time.perf_counter()
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
