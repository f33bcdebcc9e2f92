"""The coalescer without servers: who joins which batch, the cap, and failures kept to their
own caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from app.core.coalesce import Coalescer


class Recorder:
    """A batch call that records its batches and can be held open or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def run(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.release.wait()
        if 13 in items:
            raise ValueError("13 breaks its batch")
        return [i * 10 for i in items]


async def test_requests_arriving_during_a_batch_join_the_next_one() -> None:
    calls = Recorder()
    coalescer = Coalescer(calls.run, max_batch=100)
    calls.release.clear()
    first = asyncio.create_task(coalescer.submit(1))
    await asyncio.sleep(0.01)  # the lone first request went without waiting for company
    assert calls.batches == [[1]]
    later = [asyncio.create_task(coalescer.submit(i)) for i in range(2, 6)]
    await asyncio.sleep(0.01)
    assert calls.batches == [[1]]  # they wait for the batch in flight
    calls.release.set()
    assert await asyncio.gather(first, *later) == [10, 20, 30, 40, 50]
    assert calls.batches == [[1], [2, 3, 4, 5]]
    await coalescer.drain()


async def test_a_batch_holds_at_most_the_cap() -> None:
    calls = Recorder()
    coalescer = Coalescer(calls.run, max_batch=3)
    assert await asyncio.gather(*(coalescer.submit(i) for i in range(8))) == [
        i * 10 for i in range(8)
    ]
    assert calls.batches == [[0, 1, 2], [3, 4, 5], [6, 7]]


async def test_an_item_that_breaks_its_batch_fails_only_its_own_caller() -> None:
    calls = Recorder()
    coalescer = Coalescer(calls.run)
    results = await asyncio.gather(
        *(coalescer.submit(i) for i in (11, 12, 13, 14)), return_exceptions=True
    )
    assert results[:2] == [110, 120] and results[3] == 140
    assert isinstance(results[2], ValueError)
    assert calls.batches[0] == [11, 12, 13, 14]  # then each alone
    assert sorted(map(tuple, calls.batches[1:])) == [(11,), (12,), (13,), (14,)]


async def test_the_next_batch_still_runs_after_a_failed_one() -> None:
    calls = Recorder()
    coalescer = Coalescer(calls.run)
    with pytest.raises(ValueError):
        await coalescer.submit(13)
    assert await coalescer.submit(2) == 20
    await asyncio.wait_for(coalescer.drain(), 1)
