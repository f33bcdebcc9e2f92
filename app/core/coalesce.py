"""Coalescing: concurrent single calls share one batch call.

Each caller awaits :meth:`Coalescer.submit` with one item. When no batch is in flight, what is
waiting goes at the end of the current event-loop iteration (a lone request waits for no
timer); while a batch is in flight, new items queue and go together as the next batch once it
finishes — the busier the service, the larger the batches, and every stage of the batch call
(one lookup, one pipelined feature call, one model matrix, one commit) is paid once per batch
instead of once per item. ``max_batch`` caps a batch; the rest waits for the next one.

A batch call that raises is retried item by item, concurrently, so an item that breaks a
later stage fails only its own caller and its batch-mates get their answers. That retry is
safe only for an idempotent batch call (the scoring service is: features carry a dedup marker,
the insert ignores an id already stored, and a stored id answers as a replay).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
Batch = Callable[[Sequence[Item]], Awaitable[Sequence[Result]]]


@dataclass
class Coalescer(Generic[Item, Result]):
    """Join concurrent ``submit`` calls into one ``run`` (which returns one result per item).

    >>> calls = []
    >>> async def run(items):
    ...     calls.append(list(items))
    ...     return [i * 10 for i in items]
    >>> async def main():
    ...     coalescer = Coalescer(run, max_batch=2)
    ...     return await asyncio.gather(*(coalescer.submit(i) for i in range(5)))
    >>> asyncio.run(main()), calls
    ([0, 10, 20, 30, 40], [[0, 1], [2, 3], [4]])
    """

    run: Batch[Item, Result]
    max_batch: int = 128
    _pending: list[tuple[Item, asyncio.Future[Result]]] = field(default_factory=list)
    _busy: bool = False  # a batch is in flight, or one is scheduled for this loop iteration
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None  # the loop keeps only a weak reference to a task

    def __post_init__(self) -> None:
        self._idle.set()

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if not self._busy:
            self._busy = True  # callers of this loop iteration join the same batch
            self._idle.clear()
            loop.call_soon(self._next)
        return await future

    def _next(self) -> None:
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        if not batch:
            self._busy, self._task = False, None
            self._idle.set()
            return
        self._task = asyncio.get_running_loop().create_task(self._run(batch))
        self._task.add_done_callback(lambda _: self._next())

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self.run([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            await asyncio.gather(*(self._run([one]) for one in batch))
            return
        except BaseException as exc:  # cancelled: every waiter learns of it
            for _, future in batch:
                _settle(future, exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # a caller that went away (disconnect) wants nothing
                future.set_result(result)

    async def drain(self) -> None:
        """Wait until nothing is queued or in flight (used on shutdown)."""
        await self._idle.wait()


def _settle(future: asyncio.Future[Result], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
