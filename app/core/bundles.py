"""Model bundles: the leader's models, published for the processes that do not learn.

Every ``bundle_every_seconds`` the leading learner packs its pool — each model's checked
snapshot, the champion, the learning-log position — into one immutable bundle and publishes
it. A process that does not lead follows: it loads the newest bundle into a fresh pool and
swaps it in whole, so its scores are exactly the leader's at that log position, and a
takeover only has to learn the log after the bundle.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.core.metrics import Metrics
from app.core.ports import BundleStore
from models import plans
from models import pool as model_pool

log = logging.getLogger(__name__)
PoolFactory = Callable[[str], model_pool.ModelPool]  # champion name -> an untrained pool


def pack(pool: model_pool.ModelPool, feature_set: str, seq: int) -> bytes:
    """One bundle: every model's snapshot at learning-log position ``seq``."""
    members = {name: pool.snapshot(name, feature_set, seq) for name in pool.names()}
    bundle = {"seq": seq, "champion": pool.champion, "feature_set": feature_set}
    return pickle.dumps({**bundle, "members": members}, protocol=pickle.HIGHEST_PROTOCOL)


async def pack_off_loop(pool: model_pool.ModelPool, feature_set: str, seq: int) -> bytes:
    """:func:`pack` in a worker thread: the loop keeps answering while a big pool pickles.

    Only the owner task (the learner) calls this and waits for it, so nothing learns
    meanwhile; requests go on scoring, which only reads a trained pool. An untrained pool
    (``seq`` 0) is tiny and packed on the loop: an untrained forest builds its trees at its
    first prediction, and that must not race the pickling.
    """
    if seq == 0:
        return pack(pool, feature_set, seq)
    return await asyncio.to_thread(pack, pool, feature_set, seq)


async def snapshot_off_loop(
    pool: model_pool.ModelPool, name: str, feature_set: str, seq: int
) -> bytes:
    """One member's checkpoint snapshot, pickled in a worker thread like :func:`pack_off_loop`
    (same caller discipline: the learner waits for it; an untrained pool pickles on the loop).
    """
    if seq == 0:
        return pool.snapshot(name, feature_set, seq)
    return await asyncio.to_thread(pool.snapshot, name, feature_set, seq)


def unpack(
    blob: bytes, make_pool: PoolFactory, feature_set: str, compile_plans: bool = False
) -> tuple[int, Any]:
    """(log position, pool) of a bundle; snapshots are checked as on a restore.

    With ``compile_plans`` the pool also gets its members' inference plans
    (:mod:`models.plans`): it then scores with them until it learns (a follower never does).
    """
    data = pickle.loads(blob)  # noqa: S301 - our own bundles, from our own Redis
    if data["feature_set"] != feature_set:
        raise ValueError(f"bundle for feature set {data['feature_set']}, not {feature_set}")
    pool = make_pool(data["champion"])
    for name, member in data["members"].items():
        pool.restore(name, member, feature_set)
    if compile_plans:
        pool.install_plans(plans.for_pool(pool))
    return int(data["seq"]), pool


@dataclass
class Follower:
    """Keeps a non-leading process on the newest bundle; ``swap`` installs each one."""

    store: BundleStore
    make_pool: PoolFactory
    feature_set: str
    metrics: Metrics
    swap: Callable[[int, model_pool.ModelPool], None]
    leading: Callable[[], bool]
    max_lag_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time  # publish times are wall-clock, set by the leader
    plans: bool = True  # score with inference plans (a follower never learns)
    loaded: int = -1  # the log position of the bundle loaded
    loaded_bundle: int | None = None  # the store's number of that bundle
    behind_since: float | None = None  # since when a newer bundle exists than the loaded one

    async def poll(self) -> bool:
        """Load the newest bundle if it is newer than ours; True when one was swapped in."""
        if self.leading():
            self.behind_since = None
            return False
        latest = await self.store.latest()
        # a different number, not only a higher one: the store's fence keeps it from moving
        # backwards, and a flushed Redis numbers again from 1
        if latest is None or latest == self.loaded_bundle:
            self.behind_since = None
            self.metrics.bundle_lag.set(0)
            return False
        if self.behind_since is None:
            self.behind_since = self.clock()
        self.metrics.bundle_lag.set(self.clock() - self.behind_since)
        blob = await self.store.fetch(latest)
        if blob is None:  # expired between the two reads: the next poll takes a newer one
            return False
        # unpickling a big bundle and compiling its plans take long: a worker thread builds
        # the fresh pool (nothing else touches it) while the loop keeps answering; the swap
        # below stays on the loop
        seq, pool = await asyncio.to_thread(
            unpack, blob, self.make_pool, self.feature_set, self.plans
        )
        if self.leading():  # took over meanwhile: its own models are newer
            return False
        self.swap(seq, pool)
        self.loaded, self.loaded_bundle = seq, latest
        self.behind_since = None
        self.metrics.bundle_loaded.set(seq)
        self.metrics.bundle_lag.set(0)
        published = await self.store.published_at(latest)
        if published is not None:  # how far behind the learner this process scored, routinely
            self.metrics.bundle_delay.observe(max(self.wall() - published, 0.0))
        return True

    async def problem(self) -> str | None:
        """A readiness probe: behind the leader's newest bundle for longer than allowed."""
        if self.behind_since is None or self.leading():
            return None
        behind = self.clock() - self.behind_since
        if behind <= self.max_lag_seconds:
            return None
        return f"model bundle behind the leader for {behind:.0f}s (scoring on bundle {self.loaded})"

    async def run(self, every: float) -> None:
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("loading the newest model bundle failed; scoring on the last one")
            await asyncio.sleep(every)
