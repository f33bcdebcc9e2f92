"""Model bundles without servers: a follower swaps in the leader's models whole (identical
scores), and its readiness fails while it stays behind the newest bundle, then recovers; the
(un)pickling runs in a worker thread while the event loop keeps answering."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from app.bootstrap import build_pool
from app.config import ScoringSettings, Settings
from app.core import bundles
from app.core.metrics import Metrics
from models import pool as model_pool

FS = "feature-set"
PROBE = {"amount": 120.0, "card_count_1d": 3.0, "hour_sin": 0.5}


class MemoryBundles:
    def __init__(self) -> None:
        self.blobs: dict[int, bytes] = {}
        self.newest: int | None = None
        self.blocked = False  # fetch answers nothing (a slow or cut-off Redis)
        self.at = 0.0  # the publish time stamped on the next publish (wall clock)
        self.stamped: tuple[int, float] | None = None

    async def publish(self, seq: int, blob: bytes, epoch: int = 0, force: bool = False) -> int:
        self.blobs[seq], self.newest, self.stamped = blob, seq, (seq, self.at)
        return seq  # numbered by log position here

    async def published_at(self, seq: int) -> float | None:
        return self.stamped[1] if self.stamped and self.stamped[0] == seq else None

    async def latest(self) -> int | None:
        return self.newest

    async def fetch(self, seq: int) -> bytes | None:
        return None if self.blocked else self.blobs.get(seq)


def _pool() -> model_pool.ModelPool:
    settings = Settings(_env_file=None, scoring=ScoringSettings())  # type: ignore[call-arg]
    return build_pool(settings, None)


def _trained(labels: int) -> model_pool.ModelPool:
    pool = _pool()
    for i in range(labels):
        pool.learn({**PROBE, "amount": float(i % 50)}, i % 7 == 0, {})
    return pool


async def test_a_follower_scores_exactly_like_the_leader_and_flags_a_stuck_bundle() -> None:
    store, now = MemoryBundles(), [0.0]
    swapped: list[tuple[int, Any]] = []
    follower = bundles.Follower(
        store=store, make_pool=lambda champion: build_pool(
            Settings(_env_file=None, scoring=ScoringSettings(champion=champion)), None  # type: ignore[call-arg]
        ),
        feature_set=FS, metrics=Metrics(), swap=lambda seq, p: swapped.append((seq, p)),
        leading=lambda: False, max_lag_seconds=60, clock=lambda: now[0],
        wall=lambda: 1000.0 + now[0],
    )  # fmt: skip
    leader = _trained(300)
    store.at = 999.5
    await store.publish(5, bundles.pack(leader, FS, 5))
    assert await follower.poll() and swapped[-1][0] == 5
    mine = swapped[-1][1]
    assert [s.score for s in mine.score(PROBE)] == [s.score for s in leader.score(PROBE)]
    assert [s.version for s in mine.score(PROBE)] == [s.version for s in leader.score(PROBE)]

    store.blocked = True
    await store.publish(9, bundles.pack(_trained(400), FS, 9))
    assert not await follower.poll()
    assert await follower.problem() is None  # behind, but within the bound
    now[0] = 61.0
    assert not await follower.poll()
    problem = await follower.problem()
    assert problem is not None and "behind" in problem
    assert follower.metrics.bundle_lag._value.get() == 61.0

    store.blocked = False
    assert await follower.poll() and swapped[-1][0] == 9
    assert await follower.problem() is None
    assert follower.metrics.bundle_lag._value.get() == 0.0
    # each load observes how long after its publication this process scored with it
    delays = follower.metrics.bundle_delay.collect()[0].samples
    count = next(s.value for s in delays if s.name.endswith("_count"))
    total = next(s.value for s in delays if s.name.endswith("_sum"))
    assert (count, total) == (2, 0.5 + 61.5)  # 0.5 s, then 61.5 s behind


class LoopProbe:
    """A worker-thread step that lets the event loop tick ``ticks`` times before going on.

    Run on the loop instead, the step would wait for ticks that cannot happen: ``ran`` then
    says False (after a generous bound, only reached when the code under test is wrong).
    """

    def __init__(self, ticks: int = 50) -> None:
        self.ticks, self.count = ticks, 0
        self.inside, self.ticked = threading.Event(), threading.Event()
        self.ran: bool | None = None

    def step(self) -> None:  # called by the code under test, in its worker thread
        self.inside.set()
        self.ran = self.ticked.wait(timeout=20)

    async def tick(self) -> None:  # a concurrent coroutine: every tick is the loop answering
        start: int | None = None
        while not self.ticked.is_set():
            self.count += 1
            if start is None and self.inside.is_set():
                start = self.count
            if start is not None and self.count - start >= self.ticks:
                self.ticked.set()
            await asyncio.sleep(0)


class PicklingProbe:
    """Pickled inside a model: holds the pickling until the loop has ticked (LoopProbe)."""

    def __init__(self, probe: LoopProbe) -> None:
        self.probe = probe

    def __reduce__(self) -> tuple[Any, ...]:
        self.probe.step()
        return (str, ())


async def test_a_follower_loads_a_bundle_off_the_loop_and_swaps_it_in_on_the_loop() -> None:
    store, probe, swapped = MemoryBundles(), LoopProbe(), []

    def make_pool(champion: str) -> model_pool.ModelPool:
        probe.step()  # inside unpack: the loop must keep ticking while the bundle loads
        return build_pool(
            Settings(_env_file=None, scoring=ScoringSettings(champion=champion)),  # type: ignore[call-arg]
            None,
        )

    follower = bundles.Follower(
        store=store, make_pool=make_pool, feature_set=FS, metrics=Metrics(),
        swap=lambda seq, p: swapped.append((seq, p, threading.current_thread())),
        leading=lambda: False,
    )  # fmt: skip
    leader = _trained(300)
    await store.publish(3, bundles.pack(leader, FS, 3))
    ticker = asyncio.create_task(probe.tick())
    assert await follower.poll()
    await ticker
    assert probe.ran is True and probe.count >= probe.ticks
    seq, pool, thread = swapped[-1]
    assert seq == 3 and thread is threading.main_thread()  # the swap itself: on the loop
    assert [s.score for s in pool.score(PROBE)] == [s.score for s in leader.score(PROBE)]


async def test_the_leader_packs_off_the_loop_while_requests_read_its_models() -> None:
    leader, probe = _trained(300), LoopProbe()
    champion = leader.members[leader.champion]
    champion.model.probe = PicklingProbe(probe)  # reached while the champion is pickled
    versions: list[list[str]] = []

    async def score_while_packing() -> None:
        while not probe.inside.is_set():
            await asyncio.sleep(0)
        # a request in the middle of the pickling: the member it reads is intact
        versions.append([s.version for s in leader.score(PROBE)])
        await probe.tick()

    scorer = asyncio.create_task(score_while_packing())
    blob = await bundles.pack_off_loop(leader, FS, 7)
    await scorer
    assert probe.ran is True and probe.count >= probe.ticks
    assert versions == [[leader.version_of(name) for name in leader.names()]]
    del champion.model.probe
    assert bundles.unpack(blob, lambda c: _pool(), FS)[0] == 7


async def test_a_checkpoint_snapshot_is_pickled_off_the_loop() -> None:
    leader, probe = _trained(300), LoopProbe()
    champion = leader.members[leader.champion]
    champion.model.probe = PicklingProbe(probe)
    ticking = asyncio.create_task(probe.tick())
    blob = await bundles.snapshot_off_loop(leader, leader.champion, FS, 7)
    await ticking
    assert probe.ran is True and probe.count >= probe.ticks  # the loop ran during the pickling
    del champion.model.probe
    assert _pool().restore(leader.champion, blob, FS) == 7
