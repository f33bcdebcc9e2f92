"""Benchmark: one process vs 1 and 2 scorer processes beside a learner, REST and Kafka.

Three layouts, each on its own embedded Kafka-compatible broker, Valkey and PostgreSQL (all
on this machine's cores, loopback): ``one process`` (RIVERGUARD_ROLE=all scores and learns),
and 1 or 2 scorer processes (RIVERGUARD_ROLE=scorer, each on its own port, one consumer
group) beside a learner (RIVERGUARD_ROLE=learner). In each layout, in order:

1. REST: the open-loop ladder of bench/api.py (latency from each request's scheduled time),
   each rate split evenly over the scorers; CPU recorded per process group.
2. Kafka (bench/scale_kafka.py): a burst on the transactions topic (sustained tx/s from the
   first to the last score produced, CPU per transaction), then transactions paced at a fixed
   rate (end-to-end p99) while labels arrive at the same rate (labels/s learned, learner CPU
   per label, how long each scorer scores with an older bundle than the newest published).
3. The newest bundle's size, pack, write and load times, and Postgres bytes per transaction
   (bench/scale_parts.py).

Bounded: fixed counts, every wait has a deadline; children are stopped by PID.

    .venv/bin/python -m bench.scale [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.tools.embedded import EmbeddedStack
from app.tools.service_process import ServiceProcess, stack_env
from bench import scale_kafka, scale_parts
from bench.api import KEY, body_factory, cpu_seconds
from bench.loadgen import LoadResult, open_loop
from bench.scale_render import render

RATES = (250, 500, 750, 1000, 1250, 1500)
LAYOUTS = {"one process": 0, "1 scorer + learner": 1, "2 scorers + learner": 2}


@dataclass
class Layout:
    name: str
    rest: list[LoadResult]
    kafka: scale_kafka.KafkaResult
    bundle: scale_parts.BundleCost | None
    bytes: scale_parts.Bytes


async def split_ladder(
    urls: list[str], seconds: float, watch: dict[str, list[int]]
) -> list[LoadResult]:
    """bench/api.py's ladder with each rate split evenly over ``urls`` (one result per rate)."""
    headers, results = {"X-API-Key": KEY}, []
    for index, rate in enumerate(RATES):
        share = rate / len(urls)
        warm = 3.0 if index == 0 else 1.0
        await asyncio.gather(*(
            open_loop(f"{u}/v1/transactions", body_factory(f"w{rate}-{n}"), 200 / len(urls),
                      warm, headers)
            for n, u in enumerate(urls)
        ))  # fmt: skip
        before = {name: cpu_seconds(pids, name != "generator") for name, pids in watch.items()}
        started = time.perf_counter()
        parts = await asyncio.gather(*(
            open_loop(f"{u}/v1/transactions", body_factory(f"r{rate}-{n}"), share, seconds,
                      headers)
            for n, u in enumerate(urls)
        ))  # fmt: skip
        wall = time.perf_counter() - started
        result = LoadResult(rate=rate, seconds=seconds)
        for part in parts:
            result.latencies_ms += part.latencies_ms
            result.errors += part.errors
        result.cores = {
            name: (cpu_seconds(pids, name != "generator") - before[name]) / wall
            for name, pids in watch.items()
        }
        results.append(result)
        if result.percentile(99) > 200:  # far past saturation: stop climbing
            break
    return results


def start(env: dict[str, str], scorers: int) -> tuple[ServiceProcess | None, list[ServiceProcess]]:
    """The learner first (so it leads), then the scorers; ``scorers`` 0: one process, all."""
    if scorers == 0:
        return None, [ServiceProcess({**env, "RIVERGUARD_ROLE": "all"}).start()]
    learner = ServiceProcess({**env, "RIVERGUARD_ROLE": "learner"}).start()
    return learner, [
        ServiceProcess({**env, "RIVERGUARD_ROLE": "scorer"}).start() for _ in range(scorers)
    ]


def run(name: str, scorers: int, seconds: float) -> Layout:
    with EmbeddedStack() as stack:
        urls = stack.start()
        assert urls.kafka_bootstrap and urls.redis_url and urls.database_url
        learner, scoring = start(stack_env(urls, KEY), scorers)
        services = [*scoring, *([learner] if learner else [])]
        try:
            pids = stack.pids()
            groups = {
                "scorers": [s.pid for s in scoring],
                **({"learner": [learner.pid]} if learner else {}),
                **{n: [pid] for n, pid in pids.items() if n in ("valkey", "postgres", "kafka")},
            }
            urls_ = [s.url for s in scoring]
            rest = asyncio.run(split_ladder(urls_, seconds, {**groups, "generator": [os.getpid()]}))
            lead = learner.url if learner else scoring[0].url
            kafka = asyncio.run(
                scale_kafka.phases(urls.kafka_bootstrap, lead, urls_ if learner else [], groups)
            )
            bundle = asyncio.run(scale_parts.bundle_cost(urls.redis_url))
        finally:
            for service in services:
                service.stop()
        stored = asyncio.run(scale_parts.postgres_bytes(urls.database_url))
    return Layout(name, rest, kafka, bundle, stored)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    started = time.perf_counter()
    layouts = [run(name, scorers, args.seconds) for name, scorers in LAYOUTS.items()]
    print(render(layouts, args.seconds, time.perf_counter() - started))


if __name__ == "__main__":
    main()
