"""Benchmark: the scoring hot path stage by stage, CPU per transaction, in one process.

The real composition (``app.bootstrap.running``, ``RIVERGUARD_ROLE=scorer``) on the embedded
Valkey and PostgreSQL, the default lineup trained (``bench/trained.py``) and loaded from a
published bundle, so it scores with inference plans. Transactions go through
:meth:`ScoringService.score` as the Kafka worker hands them (batches of ``--batch``) and as
REST does (one at a time, one after the other, and ``--concurrent`` requests in flight at once,
which coalesce into batches as they do in the service); each stage's process CPU is summed by timers
wrapped around the service's collaborators. Kafka consume/produce/commit and HTTP are left
out: ``bench/stream.py`` and ``bench/api.py`` measure them beside their bare baselines.
``--river`` repeats the Kafka run with the plans removed (the pool's River objects score).

    .venv/bin/python -m bench.hotpath [--count 20000] [--batch 500] [--rest 3000] [--concurrent 8,32,128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app import bootstrap
from app.config import Settings
from app.core.metrics import Metrics
from app.core.scoring import Scored
from app.tools.embedded import EmbeddedStack
from bench.trained import publish, traffic, trained_bundle
from features.schema import decode_transaction

STAGES = {
    "decode": "request decode (strict JSON + schema)",
    "lookup": "stored-result lookup (Postgres)",
    "features": "features (Redis, one Lua step per entity)",
    "models": "model scores (champion + 2 challengers)",
    "decide": "decision layer, reasons, answer, record",
    "commit": "group commit (Postgres insert)",
    "glue": "the rest (canonical JSON, digest, outcomes, Prometheus)",
}


class Timers:
    """CPU seconds per stage; ``wrap`` times a collaborator's calls (awaited or not)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, attr: str, stage: str) -> None:
        inner = getattr(owner, attr)
        if asyncio.iscoroutinefunction(inner):

            async def timed_async(*args: Any, **kw: Any) -> Any:
                started = time.process_time()
                try:
                    return await inner(*args, **kw)
                finally:
                    self.cpu[stage] += time.process_time() - started

            setattr(owner, attr, timed_async)
            return

        def timed(*args: Any, **kw: Any) -> Any:
            started = time.process_time()
            try:
                return inner(*args, **kw)
            finally:
                self.cpu[stage] += time.process_time() - started

        setattr(owner, attr, timed)


def bodies(run: str, count: int, seed: int) -> list[bytes]:
    """Simulated transactions (``bench/trained.py``'s traffic) under ids of this run."""
    out = []
    for _, body in traffic(count, seed=seed):
        tx = json.loads(body)
        tx["transaction_id"] = f"{run}-{tx['transaction_id']}"
        out.append(json.dumps(tx).encode())
    return out


async def run_path(
    state: Any, payloads: list[bytes], batch: int, path: Any, concurrent: int = 0
) -> dict[str, float]:
    """CPU µs per transaction by stage for ``payloads`` scored in batches of ``batch`` (or,
    with ``concurrent``, as that many REST requests in flight at once that coalesce)."""
    timers = Timers()
    service = state.service
    saved = [
        (service.repository, "find"), (service.features, "score_batch"),
        (service.scorer, "score_rows"), (service.scorer, "decide"),
        (service.writer, "write_many"),
    ]  # fmt: skip
    originals = [(owner, attr, getattr(owner, attr)) for owner, attr in saved]
    for (owner, attr), stage in zip(
        saved, ["lookup", "features", "models", "decide", "commit"], strict=True
    ):
        timers.wrap(owner, attr, stage)
    total = 0.0
    decisions: dict[str, int] = defaultdict(int)
    try:
        if concurrent:
            total = await _concurrent(service, payloads, concurrent, timers, decisions)
        for start in range(0, len(payloads) if not concurrent else 0, batch):
            began = time.process_time()
            now = datetime.now(UTC)
            txs = [decode_transaction(b, now=now) for b in payloads[start : start + batch]]
            timers.cpu["decode"] += time.process_time() - began
            for outcome in await service.score(txs, path):
                assert isinstance(outcome, Scored)
                decisions[outcome.score.decision] += 1
            total += time.process_time() - began
    finally:
        for owner, attr, original in originals:
            setattr(owner, attr, original)
    timers.cpu["glue"] = total - sum(timers.cpu.values())
    out = {stage: timers.cpu[stage] / len(payloads) * 1e6 for stage in STAGES}
    out["total"] = total / len(payloads) * 1e6
    print(f"  {path} batch {batch}: decisions {dict(decisions)}", file=sys.stderr)
    return out


async def _concurrent(
    service: Any, payloads: list[bytes], concurrent: int, timers: Timers, decisions: Any
) -> float:
    """``concurrent`` requests in flight, each decoded alone then submitted (REST's route)."""
    began = time.process_time()
    todo = iter(payloads)

    async def client() -> None:
        for body in todo:
            started = time.process_time()
            tx = decode_transaction(body, now=datetime.now(UTC))
            timers.cpu["decode"] += time.process_time() - started
            outcome = await service.submit(tx)
            assert isinstance(outcome, Scored)
            decisions[outcome.score.decision] += 1

    await asyncio.gather(*(client() for _ in range(concurrent)))
    return time.process_time() - began


async def measure(urls: Any, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    trained = trained_bundle()
    await publish(urls.redis_url, trained)
    env = {"RIVERGUARD_ROLE": "scorer", "RIVERGUARD_REDIS_URL": urls.redis_url,
           "RIVERGUARD_DATABASE_URL": urls.database_url, "RIVERGUARD_DEV_MODE": "true"}  # fmt: skip
    os.environ.update(env)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    results: dict[str, dict[str, float]] = {}
    async with bootstrap.running(settings, Metrics()) as state:
        while not state.service.scorer.pool.plans():  # the follower's first bundle load
            await asyncio.sleep(0.1)
        assert state.learner.warmup is None or state.learner.warmup.done
        await run_path(state, bodies("warm", 1000, 10), args.batch, "kafka")  # connections, caches
        results[f"Kafka, batch {args.batch}, plans"] = await run_path(
            state, bodies("k", args.count, 11), args.batch, "kafka"
        )
        results["REST, one at a time, plans"] = await run_path(
            state, bodies("r", args.rest, 12), 1, "rest"
        )
        for n in (int(c) for c in args.concurrent.split(",")):
            results[f"REST, {n} in flight, coalesced, plans"] = await run_path(
                state, bodies(f"rc{n}", args.rest, 15), 1, "rest", n
            )
        if args.river:
            state.service.scorer.pool.install_plans({})
            results[f"Kafka, batch {args.batch}, River objects"] = await run_path(
                state, bodies("kr", args.count, 13), args.batch, "kafka"
            )
            results["REST, one at a time, River objects"] = await run_path(
                state, bodies("rr", args.rest, 14), 1, "rest"
            )
    return results


def render(results: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    runs = list(results)
    lines = [
        "## Hot path stage by stage (bench/hotpath.py)",
        "",
        "Process CPU µs per transaction inside one service process (role scorer, default lineup",
        f"trained on {trained_bundle().seq:,} simulator labels, loaded from a published bundle),",
        "embedded Valkey and PostgreSQL; Kafka and HTTP excluded (see the stream and API sections).",
        f"{args.count:,} transactions per Kafka run, {args.rest:,} per REST run.",
        "",
        "| stage | " + " | ".join(runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for stage, label in [*STAGES.items(), ("total", "**total**")]:
        lines.append(f"| {label} | " + " | ".join(f"{results[r][stage]:,.1f}" for r in runs) + " |")
    lines += ["", "Command: `.venv/bin/python -m bench.hotpath --river`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rest", type=int, default=3_000)
    parser.add_argument(
        "--concurrent", default="8,32,128", help="REST requests in flight (comma-separated runs)"
    )
    parser.add_argument("--river", action="store_true", help="also score with River objects")
    args = parser.parse_args()
    with EmbeddedStack() as stack:
        urls = stack.start(kafka=False)
        results = asyncio.run(measure(urls, args))
    print(render(results, args))


if __name__ == "__main__":
    main()
