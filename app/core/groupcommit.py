"""Group commit: concurrent writers share one Postgres transaction.

Each caller awaits :meth:`GroupCommitter.write`. When no flush is in flight, what is waiting
is flushed at the end of the current event-loop iteration (so a lone request pays one commit
and no timer); while a flush is in flight, new records wait for it to finish and then go
together as the next group — the busier the service, the larger the groups. A group also
starts when ``flush_max`` records are waiting, or when ``flush_ms`` has passed while an
earlier flush is still running (so a slow commit cannot hold new records back for long).
Every caller gets its own result after the shared commit — so a 200 or an offset commit is
sent only once the record is durable, and the cost of a commit is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
Flush = Callable[[Sequence[Item]], Awaitable[Sequence[Result]]]


@dataclass
class GroupCommitter(Generic[Item, Result]):
    """Batch concurrent ``write`` calls into one ``flush`` (which returns one result per item).

    >>> async def flush(items):
    ...     return [i * 10 for i in items]
    >>> async def main():
    ...     committer = GroupCommitter(flush, flush_ms=1, flush_max=10)
    ...     return await asyncio.gather(*(committer.write(i) for i in range(3)))
    >>> asyncio.run(main())
    [0, 10, 20]
    """

    flush: Flush[Item, Result]
    flush_ms: float = 2.0
    flush_max: int = 256
    _pending: list[tuple[Item, asyncio.Future[Result]]] = field(default_factory=list)
    _timer: asyncio.TimerHandle | None = None
    _soon: bool = False
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)

    async def write(self, item: Item) -> Result:
        return (await self.write_many([item]))[0]

    async def write_many(self, items: Sequence[Item]) -> list[Result]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        self._pending.extend(zip(items, futures, strict=True))
        if len(self._pending) >= self.flush_max:
            self._start_flush()
        elif not self._inflight and not self._soon:
            self._soon = True  # writers of this loop iteration join the same group
            loop.call_soon(self._start_flush)
        elif self._timer is None and not self._soon:
            self._timer = loop.call_later(self.flush_ms / 1000, self._start_flush)
        return list(await asyncio.gather(*futures))

    def _start_flush(self) -> None:
        self._soon = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self._pending = self._pending, []
        if group:
            task = asyncio.get_running_loop().create_task(self._run(group))
            self._inflight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._pending and not self._inflight and not self._soon:
            self._start_flush()  # what queued up during that commit goes now, as one group

    async def _run(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self.flush([item for item, _ in group])
        except BaseException as exc:  # every waiter learns of the failure
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def drain(self) -> None:
        """Flush what is waiting and wait for in-flight groups (used on shutdown)."""
        self._start_flush()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
