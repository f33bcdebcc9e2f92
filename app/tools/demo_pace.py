"""The demo's replay held back while the scorer's models are behind the labels it took in.

The demo replays two weeks of event time in minutes. In a deployment labels trickle in (a few
thousand a day) and the learner learns each within seconds; compressed, they arrive faster
than the one learner learns them, and nothing slows the stream down: a scorer answers a label
``accepted`` at once (the learner, another process, settles it later). Left alone, the scorer
would score the demo's second week with models days of event time behind the labels that had
already arrived — the models would look much worse than they are. :class:`Hold` is awaited
before each record of the replay (:func:`simulator.replay.replay`'s ``hold``): while more than
``slack`` labels taken in are missing from the scorer's models, it waits.

>>> import asyncio
>>> lags = iter([900, 700, 300, 100])
>>> async def lag() -> int:
...     return next(lags)
>>> hold = Hold(lag, slack=500, every_s=0.0, poll_s=0.0)
>>> asyncio.run(hold())
>>> hold.holds, hold.worst
(1, 900)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class Hold:
    """Wait while ``lag()`` (labels the scorer's models have not learned) exceeds ``slack``.

    ``lag`` is read at most every ``every_s`` seconds while the replay runs freely, every
    ``poll_s`` while it is held. A lag that has not shrunk for ``stall_s`` seconds stops the
    holding for good (a stuck learner must not hang the demo; the summary shows the lag).
    """

    lag: Callable[[], Awaitable[int]]
    slack: int = 1500
    every_s: float = 0.5
    poll_s: float = 0.25
    stall_s: float = 60.0
    holds: int = 0  # times the replay was held
    held_s: float = 0.0  # wall time spent held
    worst: int = 0  # the largest lag read
    stalled: bool = False
    _next: float = 0.0

    async def __call__(self) -> None:
        now = time.monotonic()
        if self.stalled or now < self._next:
            return
        self._next = now + self.every_s
        lag = await self._read()
        if lag <= self.slack:
            return
        self.holds += 1
        best, moved = lag, now
        while lag > self.slack:
            if time.monotonic() - moved > self.stall_s:
                self.stalled = True
                break
            await asyncio.sleep(self.poll_s)
            lag = await self._read()
            if lag < best:
                best, moved = lag, time.monotonic()
        self.held_s += time.monotonic() - now
        self._next = time.monotonic() + self.every_s

    async def _read(self) -> int:
        lag = await self.lag()
        self.worst = max(self.worst, lag)
        return lag
