"""Readiness probes: each dependency answers within a short timeout or is reported down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Probe = Callable[[], Awaitable[str | None]]  # None = healthy, else a short reason


@dataclass
class Readiness:
    """Named probes plus progress heartbeats of background workers.

    >>> r = Readiness(stall_seconds=30)
    >>> r.beat("transactions-worker", now=100.0)
    >>> r.stalled(now=120.0), r.stalled(now=131.0)
    ([], ['transactions-worker'])
    """

    stall_seconds: float
    probes: dict[str, Probe] = field(default_factory=dict)
    heartbeats: dict[str, float] = field(default_factory=dict)

    def beat(self, worker: str, now: float | None = None) -> None:
        self.heartbeats[worker] = time.monotonic() if now is None else now

    def forget(self, worker: str) -> None:
        self.heartbeats.pop(worker, None)

    def stalled(self, now: float | None = None) -> list[str]:
        moment = time.monotonic() if now is None else now
        limit = self.stall_seconds
        return sorted(name for name, seen in self.heartbeats.items() if moment - seen > limit)

    async def check(self, limit: float = 2.0) -> dict[str, str]:
        """Name → problem for every probe that failed; empty when all is well."""
        names = list(self.probes)
        results = await asyncio.gather(
            *(_bounded(self.probes[name], limit) for name in names), return_exceptions=False
        )
        problems = {name: reason for name, reason in zip(names, results, strict=True) if reason}
        for worker in self.stalled():
            problems[worker] = f"no progress for more than {self.stall_seconds:.0f}s"
        return problems


async def watch(
    readiness: Readiness, report: Callable[[dict[str, str]], None], every: float
) -> None:
    """Check readiness every ``every`` seconds and hand the problems to ``report`` (metrics)."""
    while True:
        report(await readiness.check())
        await asyncio.sleep(every)


async def _bounded(probe: Probe, limit: float) -> str | None:
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that arrives as the probe finishes, and this loop would outlive the shutdown
        async with asyncio.timeout(limit):
            return await probe()
    except TimeoutError:
        return "timed out"
    except Exception as exc:  # a probe reports; it never raises
        return type(exc).__name__
