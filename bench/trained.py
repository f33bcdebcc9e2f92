"""Benchmark helper: the default lineup *trained*, published as the bundle a scorer follows.

:func:`trained_bundle` trains the default champion and challengers prequentially on a seeded
simulator stream, as the service's learner would (each transaction scored, each label learned
once with the scores it got), and packs the pool into a model bundle at learning-log position
``labels``; the blob is cached on disk (training takes about a minute on 2 cores).
:func:`publish` puts it where a follower looks (Redis, the ``{bundles}`` keys), so a service
started with ``RIVERGUARD_ROLE=scorer`` loads it at its first bundle poll and scores with the
members' inference plans. :func:`wait_loaded` waits until the service says it has.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from app.bootstrap import build_pool
from app.bundles.redis_store import RedisBundleStore
from app.config import Settings
from app.core import bundles
from app.tools.evaluate import events
from features import definitions
from simulator.config import SimConfig
from simulator.generate import generate


@dataclass(frozen=True)
class Trained:
    blob: bytes  # the bundle
    seq: int  # its learning-log position (= labels learned)
    frauds: int
    probe: list[dict[str, float]]  # features of the transactions after the training stream


def trained_bundle(days: float = 10, cards: int = 1500, seed: int = 3) -> Trained:
    """The default lineup after a simulated stream (cached in the temp directory)."""
    cache = Path(tempfile.gettempdir()) / f"riverguard-bench-bundle-{days}-{cards}-{seed}.pkl"
    if cache.exists():
        with cache.open("rb") as fh:
            return Trained(**pickle.load(fh))  # written by this function
    pool = build_pool(Settings(_env_file=None), None)  # type: ignore[call-arg]
    scored: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    probe: list[dict[str, float]] = []
    labels = frauds = 0
    for event in events(generate(SimConfig(days=days, cards=cards, seed=seed))):
        if event.kind == "tx":
            x = dict(event.features or {})
            scored[event.key] = (x, {s.name: s.score for s in pool.score(x)})
            probe = [*probe[-1999:], x]
        elif event.key in scored and event.label is not None:
            x, at_scoring = scored.pop(event.key)
            pool.learn(x, event.label, at_scoring, at=event.time)
            labels += 1
            frauds += bool(event.label)
    blob = bundles.pack(pool, definitions.FEATURE_SET_ID, labels)
    trained = Trained(blob, labels, frauds, probe)
    with cache.open("wb") as fh:
        pickle.dump(trained.__dict__, fh)  # plain data: readable whoever runs as __main__
    return trained


def traffic(count: int, seed: int = 4) -> list[tuple[bytes, bytes]]:
    """(key, body) of ``count`` simulated transactions of the last days: realistic traffic
    (another population than the training one, the same behaviour)."""
    cards = max(3000, count // 4)
    days = count / (cards * 1.2) + 0.5
    start = datetime.now(UTC) - timedelta(days=days + 1)
    out = []
    for record in generate(SimConfig(days=days, cards=cards, seed=seed, start=start)):
        if record.kind == "transaction":
            out.append((str(record.data["card_id"]).encode(), record.payload()))
            if len(out) == count:
                break
    return out


async def publish(redis_url: str, trained: Trained) -> None:
    """Publish the bundle as the leading learner would (the newest one, kept 1 h)."""
    import redis.asyncio as redis

    client = redis.from_url(redis_url)
    try:
        await RedisBundleStore(client, keep_seconds=3600).publish(trained.seq, trained.blob)
    finally:
        await client.aclose()


def wait_loaded(url: str, seq: int, timeout: float = 60.0) -> float:
    """Seconds until the service at ``url`` reports bundle ``seq`` loaded (its gauge)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        for line in httpx.get(f"{url}/metrics").text.splitlines():
            if line.startswith("riverguard_bundle_loaded_seq ") and float(line.split()[1]) == seq:
                return time.perf_counter() - started
        time.sleep(0.1)
    raise TimeoutError(f"bundle {seq} not loaded after {timeout:.0f} s")


def main() -> None:
    started = time.process_time()
    trained = trained_bundle()
    print(
        f"bundle at {trained.seq:,} labels ({trained.frauds:,} fraud), {len(trained.blob):,} "
        f"bytes, {time.process_time() - started:.1f} s CPU"
    )


if __name__ == "__main__":
    main()
