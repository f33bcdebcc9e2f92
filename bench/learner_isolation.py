"""Benchmark: REST latency on a scorer while the learner is idle and while it learns.

Open loop, transactions at a fixed rate against one process; then the same rate again while
labels for the earlier transactions arrive at the same rate (every transaction eventually
gets a label). Two layouts: ``all`` (one process scores and learns on one event loop) and
``split`` (RIVERGUARD_ROLE=scorer answers, RIVERGUARD_ROLE=learner learns), with the labels
posted to the scorer (it records them; the learner claims them) or to the learner. Everything shares this machine's cores, so CPU contention is in
the figures too; the comparison within a layout is what the event loops account for.

    .venv/bin/python -m bench.learner_isolation [--rate 200] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.tools.embedded import EmbeddedStack
from app.tools.service_process import ServiceProcess, stack_env
from bench.api import KEY, body_factory, cpu_seconds
from bench.loadgen import LoadResult, open_loop

HEADERS = {"X-API-Key": KEY}


def label_factory(run: str):  # type: ignore[no-untyped-def]
    at = datetime.now(UTC).isoformat()

    def body(i: int) -> bytes:
        return json.dumps(
            {"transaction_id": f"{run}-{i}", "is_fraud": i % 97 == 0, "labeled_at": at,
             "source": "chargeback"}
        ).encode()  # fmt: skip

    return body


async def phases(
    scorer: str, labels_to: str, rate: float, seconds: float
) -> tuple[LoadResult, LoadResult]:
    tx_url, label_url = f"{scorer}/v1/transactions", f"{labels_to}/v1/labels"
    await open_loop(tx_url, body_factory("warm"), rate, 2.0, HEADERS)
    idle = await open_loop(tx_url, body_factory("a"), rate, seconds, HEADERS)
    busy, _ = await asyncio.gather(
        open_loop(tx_url, body_factory("b"), rate, seconds, HEADERS),
        open_loop(label_url, label_factory("a"), rate, seconds, HEADERS),
    )
    return idle, busy


def measure(layout: str, rate: float, seconds: float) -> dict[str, object]:
    with EmbeddedStack() as stack:
        urls = stack.start(kafka=False)
        env = {**stack_env(urls, KEY), "RIVERGUARD_SCORING__CHECKPOINT_EVERY_SECONDS": "30"}
        services = (
            [ServiceProcess({**env, "RIVERGUARD_ROLE": "all"})]
            if layout == "all"
            else [
                ServiceProcess({**env, "RIVERGUARD_ROLE": "scorer"}),
                ServiceProcess({**env, "RIVERGUARD_ROLE": "learner"}),
            ]
        )
        for service in services:
            service.start()
        try:
            pids = [s.pid for s in services]
            before = [cpu_seconds([pid]) for pid in pids]
            labels_to = services[-1].url if layout == "split, labels to the learner" else None
            idle, busy = asyncio.run(
                phases(services[0].url, labels_to or services[0].url, rate, seconds)
            )
            cpu = [cpu_seconds([pid]) - b for pid, b in zip(pids, before, strict=True)]
        finally:
            for service in services:
                service.stop()
    return {"layout": layout, "idle": idle, "busy": busy, "cpu": cpu}


def render(rows: list[dict[str, object]], rate: float, seconds: float) -> str:
    lines = [
        "## Learning off the scoring loop (bench/learner_isolation.py)",
        "",
        f"Transactions open loop at {rate:g} req/s for {seconds:g} s with the learner idle, then"
        f" again while labels arrive at {rate:g}/s; latency of the transactions.",
        "",
        "| layout | learner | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        for phase in ("idle", "busy"):
            r = row[phase]
            assert isinstance(r, LoadResult)
            lines.append(
                f"| {row['layout']} | {phase} | {r.percentile(50):.2f} |"
                f" {r.percentile(99):.2f} | {r.errors} |"
            )
    lines.append("")
    for row in rows:
        cpu = row["cpu"]
        assert isinstance(cpu, list)
        lines.append(
            f"CPU seconds over both phases, {row['layout']}: "
            + ", ".join(f"{c:.1f}" for c in cpu)
            + (" (scorer, learner)" if len(cpu) == 2 else " (one process)")
        )
    lines += ["", "Command: `.venv/bin/python -m bench.learner_isolation`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    os.environ.pop("RIVERGUARD_ROLE", None)
    layouts = ("all", "split, labels to the scorer", "split, labels to the learner")
    rows = [measure(layout, args.rate, args.seconds) for layout in layouts]
    print(render(rows, args.rate, args.seconds))


if __name__ == "__main__":
    main()
