"""Parts of bench/scale.py measured on what a run left behind: the bundle and the bytes.

The newest model bundle the learner published is read from Valkey and timed through the
service's own functions: ``bundles.unpack`` (what a follower does, in its worker thread),
``bundles.pack`` of that pool and a SET of the blob (what the leader does). Postgres bytes per
transaction and per label use bench/storage.py's measurement (after a VACUUM) on the run's own
database, i.e. on what the service wrote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg
import redis.asyncio as redis

from app.bootstrap import build_pool
from app.bundles.redis_store import RedisBundleStore
from app.config import ScoringSettings, Settings
from app.core import bundles
from bench.storage import measure
from features import definitions


@dataclass
class BundleCost:
    seq: int  # learning-log position of the bundle (labels learned)
    size: int  # bytes
    pack_ms: float
    write_ms: float  # one SET of the blob to Valkey (the pointer's SET is a few bytes more)
    unpack_ms: float


def _pool(champion: str):  # type: ignore[no-untyped-def]
    settings = Settings(_env_file=None, scoring=ScoringSettings(champion=champion))  # type: ignore[call-arg]
    return build_pool(settings, None)


async def bundle_cost(redis_url: str, repeat: int = 3) -> BundleCost | None:
    """The newest published bundle: size, and the best of ``repeat`` timings of each step."""
    client = redis.from_url(redis_url)
    try:
        store = RedisBundleStore(client)
        seq = await store.latest()
        blob = None if seq is None else await store.fetch(seq)
        if seq is None or blob is None:
            return None
        fs = definitions.FEATURE_SET_ID
        unpack, pack, write = [], [], []
        for _ in range(repeat):
            started = time.perf_counter()
            _, pool = bundles.unpack(blob, _pool, fs)
            unpack.append(time.perf_counter() - started)
            started = time.perf_counter()
            packed = bundles.pack(pool, fs, seq)
            pack.append(time.perf_counter() - started)
            started = time.perf_counter()
            await client.set("bench:{bundles}:copy", packed, ex=60)
            write.append(time.perf_counter() - started)
        await client.delete("bench:{bundles}:copy")
        return BundleCost(seq, len(blob), min(pack) * 1e3, min(write) * 1e3, min(unpack) * 1e3)
    finally:
        await client.aclose()


@dataclass
class Bytes:
    transactions: int
    per_transaction: float
    labels: int
    per_label: float


async def postgres_bytes(database_url: str) -> Bytes:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("VACUUM ANALYZE")
        transactions = int(await conn.fetchval("SELECT count(*) FROM transaction_ids"))
        labels = int(await conn.fetchval("SELECT count(*) FROM learn_log"))
    finally:
        await conn.close()
    tx_sizes, label_sizes = await measure(database_url)
    tx_bytes = sum(r.total_bytes for r in tx_sizes)
    label_bytes = sum(r.total_bytes for r in label_sizes)
    return Bytes(
        transactions, tx_bytes / max(transactions, 1), labels, label_bytes / max(labels, 1)
    )
