"""Open-loop HTTP load: requests are sent on a fixed schedule whatever the server does.

Latency is measured from each request's *scheduled* send time, so a slow server cannot slow
the generator down and hide its own queueing (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np


@dataclass
class LoadResult:
    rate: float
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return len(self.latencies_ms) + self.errors

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def achieved(self) -> float:
        return len(self.latencies_ms) / self.seconds


async def open_loop(
    url: str,
    body: Callable[[int], bytes],
    rate: float,
    seconds: float,
    headers: dict[str, str] | None = None,
    connections: int = 64,
) -> LoadResult:
    result = LoadResult(rate=rate, seconds=seconds)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    total = int(rate * seconds)
    async with httpx.AsyncClient(limits=limits, timeout=10, headers=headers or {}) as client:
        start = time.perf_counter() + 0.05
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(client, url, body(i), due, result)))
        await asyncio.gather(*tasks)
    return result


async def _one(
    client: httpx.AsyncClient, url: str, payload: bytes, due: float, result: LoadResult
) -> None:
    try:
        response = await client.post(
            url, content=payload, headers={"content-type": "application/json"}
        )
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            result.errors += 1
            return
        result.latencies_ms.append((time.perf_counter() - due) * 1000)
    except httpx.HTTPError:
        result.errors += 1
