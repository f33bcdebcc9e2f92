"""Benchmark: POST /v1/transactions (full path) vs a bare FastAPI endpoint, open-loop.

Full path = strict decoding, Redis features (Lua, atomic), champion + challengers, reasons,
group-committed Postgres write, then the answer. Both servers are one uvicorn process on the
embedded stack; the load generator runs in this process. Prints a markdown section.

    .venv/bin/python -m bench.api [--seconds 5] [--rates 250,500,1000,2000] [--every-rate]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.tools.embedded import EmbeddedStack
from app.tools.service_process import ServiceProcess, stack_env
from bench.loadgen import LoadResult, open_loop
from bench.trained import publish, traffic, trained_bundle, wait_loaded

RATES = (250, 500, 750, 1000, 1250, 1500, 2000)
KEY = "bench-key"


TRAFFIC: list[dict[str, object]] = []


def body_factory(run: str):  # type: ignore[no-untyped-def]
    """Simulated transactions (``bench/trained.py``), cycled, under ids of this run."""
    if not TRAFFIC:
        TRAFFIC.extend(json.loads(body) for _, body in traffic(20_000, seed=5))

    def body(i: int) -> bytes:
        return json.dumps({**TRAFFIC[i % len(TRAFFIC)], "transaction_id": f"{run}-{i}"}).encode()

    return body


def cpu_seconds(pids: list[int], descendants: bool = True) -> float:
    """User + system CPU of these processes (and, by default, of their live descendants)."""
    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            family = process.children(recursive=True) if descendants else []
            for p in [process, *family]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


async def ladder(
    url: str,
    run: str,
    seconds: float,
    headers: dict[str, str],
    watch: dict[str, list[int]],
    rates: tuple[int, ...] = RATES,
    every_rate: bool = False,
) -> list[LoadResult]:
    """Climb the rates; ``watch`` names groups of processes whose CPU use is recorded."""
    results = []
    # the first seconds of a fresh server open connections and warm caches: 3 s before the
    # first rate, 1 s before the others
    for index, rate in enumerate(rates):
        warm = 3.0 if index == 0 else 1.0
        await open_loop(url, body_factory(f"{run}-warm-{rate}"), 200, warm, headers)
        before = {name: cpu_seconds(pids, name != "generator") for name, pids in watch.items()}
        started = time.perf_counter()
        result = await open_loop(url, body_factory(f"{run}-{rate}"), rate, seconds, headers)
        wall = time.perf_counter() - started
        result.cores = {
            name: (cpu_seconds(pids, name != "generator") - before[name]) / wall
            for name, pids in watch.items()
        }
        results.append(result)
        if result.percentile(99) > 200 and not every_rate:  # far past saturation: stop
            break
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="req/s, comma-separated")
    parser.add_argument(
        "--every-rate", action="store_true", help="climb past saturation (CPU per request there)"
    )
    args = parser.parse_args()
    rates = tuple(int(r) for r in args.rates.split(","))
    with EmbeddedStack() as stack:
        urls = stack.start(kafka=False)
        trained = trained_bundle()
        asyncio.run(publish(urls.redis_url, trained))  # what the leading learner would do
        full = ServiceProcess(
            {**stack_env(urls, KEY), "RIVERGUARD_ROLE": "scorer"}, ready_path="/healthz"
        )
        bare = ServiceProcess(
            {"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            command=[sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", "{port}",
                     "--log-level", "warning", "--no-access-log"],
            ready_path="/docs",
        )  # fmt: skip
        try:
            full.start()
            wait_loaded(full.url, trained.seq)  # scores with the trained models' plans
            bare.start()
            headers = {"X-API-Key": KEY}
            stack_pids = stack.pids()
            watch = {
                "generator": [os.getpid()],
                "valkey": [pid for name, pid in stack_pids.items() if "valkey" in name],
                "postgres": [pid for name, pid in stack_pids.items() if "postgres" in name],
            }
            bare_results = asyncio.run(
                ladder(
                    f"{bare.url}/bare", "b", args.seconds, {},
                    {**watch, "service": [bare.pid]}, rates, args.every_rate,
                )
            )  # fmt: skip
            full_results = asyncio.run(
                ladder(
                    f"{full.url}/v1/transactions", "f", args.seconds, headers,
                    {**watch, "service": [full.pid]}, rates, args.every_rate,
                )
            )  # fmt: skip
        finally:
            for process in (full, bare):
                process.stop()
    print(render(bare_results, full_results, args.seconds))


def held(results: list[LoadResult], limit_ms: float = 10.0) -> float:
    ok = [
        r.rate
        for r in results
        if r.percentile(99) <= limit_ms and r.errors == 0 and r.achieved >= 0.95 * r.rate
    ]
    return max(ok, default=0.0)


def _per_request(result: LoadResult) -> float:
    """The service process's CPU ms per answered request at this rate."""
    return result.cores.get("service", 0.0) / max(result.achieved, 1e-9) * 1000


def render(bare: list[LoadResult], full: list[LoadResult], seconds: float) -> str:
    lines = [
        "## API latency (bench/api.py)",
        "",
        f"Open-loop load, {seconds:g} s per rate after a warm-up at 200 req/s (3 s before the first rate, 1 s before the others); latency from the scheduled send time.",
        "Full path: decode + Redis features + champion and challengers + reasons + group-committed Postgres write;",
        "requests in flight together coalesce into one batch per stage (`app/core/coalesce.py`).",
        "The service runs as RIVERGUARD_ROLE=scorer with the default lineup trained on simulator labels",
        "(`bench/trained.py`), loaded from a published bundle: it scores with inference plans.",
        "Requests: simulated transactions.",
        "",
        "| rate (req/s) | bare p50 ms | bare p99 ms | full p50 ms | full p99 ms | full achieved req/s | full errors | p99 ratio full/bare |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_rate = {r.rate: r for r in bare}
    for f in full:
        b = by_rate.get(f.rate)
        bp50 = f"{b.percentile(50):.2f}" if b else "–"
        bp99 = f"{b.percentile(99):.2f}" if b else "–"
        ratio = f"{f.percentile(99) / b.percentile(99):.1f}" if b else "–"
        lines.append(
            f"| {f.rate:g} | {bp50} | {bp99} | {f.percentile(50):.2f} | {f.percentile(99):.2f} "
            f"| {f.achieved:.0f} | {f.errors} | {ratio} |"
        )
    lines += [
        "",
        "CPU in use during each full-path rate (cores = CPU seconds per wall second; the machine",
        f"has {os.cpu_count()}), and the service's CPU per request:",
        "",
        "| rate (req/s) | service | valkey | postgres | generator | total | service ms/request | bare endpoint ms/request |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in full:
        c = f.cores
        b = by_rate.get(f.rate)
        bare_ms = f"{_per_request(b):.3f}" if b else "–"
        lines.append(
            f"| {f.rate:g} | {c.get('service', 0):.2f} | {c.get('valkey', 0):.2f} "
            f"| {c.get('postgres', 0):.2f} | {c.get('generator', 0):.2f} | {sum(c.values()):.2f} "
            f"| {_per_request(f):.3f} | {bare_ms} |"
        )
    lines += [
        "",
        f"Highest rate held with p99 ≤ 10 ms: full path **{held(full):g} req/s**, bare endpoint {held(bare):g} req/s.",
        "Load average (1 / 5 / 15 min) when the run ended: "
        + " / ".join(f"{x:.1f}" for x in os.getloadavg())
        + f" on {os.cpu_count()} cores.",
        "Command: `.venv/bin/python -m bench.api`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
