"""Group commit policy (unit tests with an in-memory flush; no database needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from app.core.groupcommit import GroupCommitter

LONG_WINDOW_MS = 60_000.0  # a window no test would survive waiting for


async def settle() -> None:
    """Let every ready callback and task run (a few event-loop iterations)."""
    for _ in range(10):
        await asyncio.sleep(0)


class Recorder:
    """A flush that records its groups and can be held open to simulate a slow commit."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_next = False

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.groups.append(list(items))
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("commit failed")
        return [i * 10 for i in items]


async def held_first_write(
    item: int, flush_ms: float = LONG_WINDOW_MS, flush_max: int = 100
) -> tuple[Recorder, GroupCommitter[int, int], asyncio.Task[int]]:
    """A committer whose first write is in flight and held open (a slow commit)."""
    flush = Recorder()
    committer = GroupCommitter(flush, flush_ms=flush_ms, flush_max=flush_max)
    flush.release.clear()
    first = asyncio.create_task(committer.write(item))
    await settle()
    return flush, committer, first


async def test_a_lone_write_does_not_wait_for_the_window() -> None:
    flush = Recorder()
    committer = GroupCommitter(flush, flush_ms=LONG_WINDOW_MS, flush_max=100)
    assert await asyncio.wait_for(committer.write(4), timeout=5) == 40
    assert flush.groups == [[4]]


async def test_writers_of_one_loop_iteration_share_a_group() -> None:
    flush = Recorder()
    committer = GroupCommitter(flush, flush_ms=LONG_WINDOW_MS, flush_max=100)
    results = await asyncio.gather(*(committer.write(i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert flush.groups == [[0, 1, 2, 3, 4]]


async def test_writes_during_a_commit_go_together_when_it_returns() -> None:
    flush, committer, first = await held_first_write(1)
    assert flush.groups == [[1]]  # in flight, held open
    later = [asyncio.create_task(committer.write(i)) for i in (2, 3, 4)]
    await settle()
    assert flush.groups == [[1]]  # the others wait for the commit in flight
    flush.release.set()
    assert await first == 10
    assert [await task for task in later] == [20, 30, 40]
    assert flush.groups == [[1], [2, 3, 4]]


async def test_flush_max_starts_a_group_even_while_a_commit_is_in_flight() -> None:
    flush, committer, first = await held_first_write(0, flush_max=3)
    full = asyncio.create_task(committer.write_many([1, 2, 3]))
    await settle()
    assert flush.groups == [[0], [1, 2, 3]]
    flush.release.set()
    assert await first == 0
    assert await full == [10, 20, 30]


async def test_the_window_bounds_the_wait_behind_a_slow_commit() -> None:
    flush, committer, first = await held_first_write(0, flush_ms=1.0)
    second = asyncio.create_task(committer.write(1))
    for _ in range(200):  # the 1 ms window passes while the first commit is still held
        await asyncio.sleep(0.005)
        if len(flush.groups) == 2:
            break
    assert flush.groups == [[0], [1]]
    flush.release.set()
    assert (await first, await second) == (0, 10)


async def test_a_failed_commit_reaches_every_waiter_and_the_next_group_still_flushes() -> None:
    flush = Recorder()
    committer = GroupCommitter(flush, flush_ms=LONG_WINDOW_MS, flush_max=100)
    flush.fail_next = True
    outcomes = await asyncio.gather(committer.write(1), committer.write(2), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert await committer.write(3) == 30
    assert flush.groups == [[1, 2], [3]]


async def test_drain_flushes_what_waits() -> None:
    flush, committer, first = await held_first_write(1)
    waiting = asyncio.create_task(committer.write(2))
    await settle()
    drained = asyncio.create_task(committer.drain())
    await settle()
    flush.release.set()
    await drained
    assert await first == 10
    assert await waiting == 20
    assert flush.groups == [[1], [2]]
