"""Model bundles in Redis: one key per bundle (expiring), one naming the newest, the cutoffs.

Both keys share the ``{bundles}`` hash tag, so a Redis Cluster keeps them on one node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class RedisBundleStore:
    client: Any  # redis.asyncio.Redis or RedisCluster
    prefix: str = "rg"
    keep_seconds: int = 600  # a bundle outlives any follower's poll by far

    def _key(self, seq: int) -> str:
        return f"{self.prefix}:{{bundles}}:{seq}"

    @property
    def _latest(self) -> str:
        return f"{self.prefix}:{{bundles}}:latest"

    @property
    def _published(self) -> str:
        return f"{self.prefix}:{{bundles}}:published"

    async def publish(self, seq: int, blob: bytes) -> None:
        # the bundle first, then the pointer: a follower never finds a pointer to nothing
        await self.client.set(self._key(seq), blob, ex=self.keep_seconds)
        await self.client.set(self._latest, str(seq))
        await self.client.set(self._published, f"{seq}:{time.time()!r}")

    async def published_at(self, seq: int) -> float | None:
        """When bundle ``seq`` was published (wall clock), if it is still the newest."""
        value = await self.client.get(self._published)
        if value is None:
            return None
        published, _, at = bytes(value).decode().partition(":")
        return float(at) if published == str(seq) else None

    async def latest(self) -> int | None:
        value = await self.client.get(self._latest)
        return None if value is None else int(value)

    async def fetch(self, seq: int) -> bytes | None:
        blob = await self.client.get(self._key(seq))
        return None if blob is None else bytes(blob)

    @property
    def _cutoffs(self) -> str:
        return f"{self.prefix}:{{bundles}}:cutoffs"

    async def publish_cutoffs(self, blob: bytes) -> None:
        await self.client.set(self._cutoffs, blob)

    async def cutoffs(self) -> bytes | None:
        blob = await self.client.get(self._cutoffs)
        return None if blob is None else bytes(blob)
