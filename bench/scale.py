"""Benchmark: REST for 1 and 2 service processes on one port (`riverguard serve --workers N`).

The same open-loop ladder as bench/api.py (latency from each request's scheduled time) against
`serve` and `serve --workers 2` on one embedded Valkey and PostgreSQL (no Kafka): one
process leads and learns (no labels here), every process scores. CPU is recorded per process
group, so the service's CPU per request stands beside its throughput.

    .venv/bin/python -m bench.scale [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.tools.embedded import EmbeddedStack
from app.tools.service_process import RIVERGUARD, ServiceProcess, stack_env
from bench.api import KEY, ladder
from bench.loadgen import LoadResult


def run(workers: int, seconds: float) -> list[LoadResult]:
    with EmbeddedStack() as stack:
        urls = stack.start(kafka=False)
        service = ServiceProcess(
            stack_env(urls, KEY),
            command=(str(RIVERGUARD), "serve", "--workers", str(workers)),
            ready_path="/healthz",
        )
        service.start()
        try:
            watch = {"service": [service.pid], "generator": [os.getpid()]}
            url = f"{service.url}/v1/transactions"
            return asyncio.run(ladder(url, f"w{workers}", seconds, {"X-API-Key": KEY}, watch))
        finally:
            service.stop()


def render(by_workers: dict[int, list[LoadResult]], seconds: float) -> str:
    lines = [
        "## Scale-out: REST on 1 and 2 processes (bench/scale.py)",
        "",
        f"Open loop, {seconds:g} s per rate after a warm-up; `serve --workers N` shares one port"
        " (SO_REUSEPORT); embedded Valkey and PostgreSQL on the same 2 cores.",
        "",
        "| rate (req/s) | processes | p50 ms | p99 ms | achieved req/s | errors |"
        " service cores | service CPU per request (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workers, results in by_workers.items():
        for r in results:
            achieved = len(r.latencies_ms) / r.seconds
            cores = r.cores.get("service", 0.0)
            per = cores / achieved * 1000 if achieved else float("nan")
            lines.append(
                f"| {r.rate:g} | {workers} | {r.percentile(50):.2f} | {r.percentile(99):.2f} |"
                f" {achieved:,.0f} | {r.errors} | {cores:.2f} | {per:.2f} |"
            )
    lines += ["", "Command: `.venv/bin/python -m bench.scale`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    by_workers = {workers: run(workers, args.seconds) for workers in (1, 2)}
    print(render(by_workers, args.seconds))


if __name__ == "__main__":
    main()
