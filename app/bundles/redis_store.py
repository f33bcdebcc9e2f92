"""Model bundles in Redis: the last few bundles, a pointer to the newest, a fence, the cutoffs.

Every key shares the ``{bundles}`` hash tag, so a Redis Cluster keeps them on one node and one
script may touch them all. A publication is one script (:data:`_PUBLISH`): it refuses a bundle
from an older epoch, or from the same epoch at an older log position (a stale leader woken from
a pause cannot move ``latest`` backwards), numbers the bundle, points ``latest`` at it and
deletes all but the newest ``keep`` bundles — Redis holds a bounded number of model copies
however long the service runs, and the newest one never expires (an idle learner publishes
nothing new, and a scorer starting then must still find it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

# KEYS: latest, fence, index, counter, published. ARGV: epoch, seq, blob, keep, key prefix,
# now, force. Returns the new bundle's id, or 0 when the fence refuses it.
_PUBLISH = """
local epoch, seq = tonumber(ARGV[1]), tonumber(ARGV[2])
local fence = redis.call('HMGET', KEYS[2], 'epoch', 'seq')
if ARGV[7] ~= '1' and fence[1] then
  local e, s = tonumber(fence[1]), tonumber(fence[2])
  if epoch < e or (epoch == e and seq < s) then return 0 end
end
local id = redis.call('INCR', KEYS[4])
redis.call('SET', ARGV[5] .. id, ARGV[3])
redis.call('HSET', KEYS[2], 'epoch', ARGV[1], 'seq', ARGV[2])
redis.call('SET', KEYS[1], id)
redis.call('SET', KEYS[5], id .. ':' .. ARGV[6])
redis.call('LPUSH', KEYS[3], id)
local keep = tonumber(ARGV[4])
for _, old in ipairs(redis.call('LRANGE', KEYS[3], keep, -1)) do
  redis.call('DEL', ARGV[5] .. old)
end
redis.call('LTRIM', KEYS[3], 0, keep - 1)
return id
"""


@dataclass
class RedisBundleStore:
    client: Any  # redis.asyncio.Redis or RedisCluster
    prefix: str = "rg"
    keep: int = 3  # bundles kept: the newest, and two a slow follower may still be loading

    def _key(self, bundle: int) -> str:
        return f"{self._tag}{bundle}"

    @property
    def _tag(self) -> str:
        return f"{self.prefix}:{{bundles}}:"

    def _keys(self) -> list[str]:
        return [self._tag + k for k in ("latest", "fence", "index", "counter", "published")]

    async def publish(self, seq: int, blob: bytes, epoch: int = 0, force: bool = False) -> int:
        """Publish a bundle at log position ``seq`` by the leader of ``epoch``; its id, or 0
        when a newer epoch (or a later position of this epoch) was published already.

        ``force`` overrides the fence: only for a leader that Postgres confirms (the Redis
        state then belongs to an earlier database, e.g. a reset development stack).
        """
        args = [epoch, seq, blob, self.keep, self._tag, repr(time.time()), "1" if force else "0"]
        bundle: int = await self.client.eval(_PUBLISH, 5, *self._keys(), *args)
        return int(bundle)

    async def published_at(self, bundle: int) -> float | None:
        """When bundle ``bundle`` was published (wall clock), if it is still the newest."""
        value = await self.client.get(self._tag + "published")
        if value is None:
            return None
        published, _, at = bytes(value).decode().partition(":")
        return float(at) if published == str(bundle) else None

    async def latest(self) -> int | None:
        value = await self.client.get(self._tag + "latest")
        return None if value is None else int(value)

    async def fetch(self, bundle: int) -> bytes | None:
        blob = await self.client.get(self._key(bundle))
        return None if blob is None else bytes(blob)

    async def count(self) -> int:
        """How many bundles Redis holds (a bound the tests check)."""
        n: int = await self.client.llen(self._tag + "index")
        return n

    @property
    def _cutoffs(self) -> str:
        return f"{self.prefix}:{{bundles}}:cutoffs"

    async def publish_cutoffs(self, blob: bytes) -> None:
        await self.client.set(self._cutoffs, blob)

    async def cutoffs(self) -> bytes | None:
        blob = await self.client.get(self._cutoffs)
        return None if blob is None else bytes(blob)
