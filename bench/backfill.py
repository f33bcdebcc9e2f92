"""Backfill rate: a simulated history through a split deployment (learner + scorer) over REST.

Run: ``.venv/bin/python -m bench.backfill --days 14 --cards 200`` (embedded servers, loopback).
Reports wall time, transactions/s and labels/s, and CPU per record of the scorer, the learner,
Valkey, PostgreSQL and the backfill client itself. The in-run baseline is the same history
POSTed to a bare FastAPI endpoint by the same client (``bench/bare_app.py``): what the
client and HTTP alone cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.tools import backfill as bf
from app.tools.embedded import EmbeddedStack
from app.tools.service_process import ServiceProcess, stack_env
from bench.api import cpu_seconds
from simulator.config import SimConfig
from simulator.generate import simulate
from simulator.records import Record

KEY = "bench-key"


def history(days: float, cards: int, seed: int = 9, fraud_rate: float = 0.01) -> list[Record]:
    start = (datetime.now(UTC) - timedelta(days=days + 2)).replace(microsecond=0)
    cut = start + timedelta(days=days)
    labelled: set[str] = set()
    out = []
    config = SimConfig(seed=seed, start=start, days=days, cards=cards, fraud_rate=fraud_rate)
    for record in simulate(config):
        if record.event_time > cut:
            continue
        if record.kind == "label":
            if record.transaction_id in labelled:
                continue
            labelled.add(record.transaction_id)
        out.append(record)
    return out


def _measure(
    records: list[Record], target: bf.Target, watch: dict[str, list[int]]
) -> dict[str, float]:
    before = {name: cpu_seconds(pids, name != "client") for name, pids in watch.items()}
    started = time.perf_counter()
    asyncio.run(bf.backfill(records, target))
    wall = time.perf_counter() - started
    cpu = {name: cpu_seconds(pids, name != "client") - before[name] for name, pids in watch.items()}
    return {"wall": wall, **{f"cpu_{k}": v for k, v in cpu.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--cards", type=int, default=200)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--fraud-rate", type=float, default=0.01)
    args = parser.parse_args()
    records = history(args.days, args.cards, args.seed, args.fraud_rate)
    n_tx = sum(r.kind == "transaction" for r in records)
    n_labels = len(records) - n_tx
    with EmbeddedStack() as stack:
        urls = stack.start(kafka=False)
        env = {**stack_env(urls, KEY), "RIVERGUARD_SCORING__BUNDLE_EVERY_SECONDS": "1"}
        learner = ServiceProcess({**env, "RIVERGUARD_ROLE": "learner"})
        scorer = ServiceProcess({**env, "RIVERGUARD_ROLE": "scorer"})
        bare = ServiceProcess(
            {"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            command=[sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", "{port}",
                     "--log-level", "warning", "--no-access-log"],
            ready_path="/docs",
        )  # fmt: skip
        try:
            learner.start(Path(tempfile.gettempdir()) / "bench-backfill-learner.log")
            scorer.start(Path(tempfile.gettempdir()) / "bench-backfill-scorer.log")
            bare.start()
            pids = stack.pids()
            watch = {
                "client": [os.getpid()],
                "scorer": [scorer.pid],
                "learner": [learner.pid],
                "valkey": [p for n, p in pids.items() if "valkey" in n],
                "postgres": [p for n, p in pids.items() if "postgres" in n],
            }
            base = _measure(
                _bare_records(records), bf.Target(bare.url, bare.url, KEY),
                {"client": [os.getpid()], "server": [bare.pid]},
            )  # fmt: skip
            full = _measure(records, bf.Target(scorer.url, learner.url, KEY), watch)
        finally:
            for process in (scorer, learner, bare):
                process.stop()
    print(render(args, n_tx, n_labels, base, full))


def _bare_records(records: list[Record]) -> list[Record]:
    """The transactions alone (the bare endpoint answers them; labels need a learner)."""
    return [r for r in records if r.kind == "transaction"]


def render(
    args: argparse.Namespace,
    n_tx: int,
    n_labels: int,
    base: dict[str, float],
    full: dict[str, float],
) -> str:
    records = n_tx + n_labels
    rows = [
        ("backfill (scorer + learner)", full["wall"], n_tx / full["wall"], n_labels / full["wall"],
         {k.removeprefix("cpu_"): v / records * 1e6 for k, v in full.items() if k != "wall"}),
        ("baseline: bare endpoint, transactions", base["wall"], n_tx / base["wall"], 0.0,
         {k.removeprefix("cpu_"): v / n_tx * 1e6 for k, v in base.items() if k != "wall"}),
    ]  # fmt: skip
    lines = [
        "## History backfill (bench/backfill.py)",
        "",
        f"Command: `.venv/bin/python -m bench.backfill --days {args.days:g} --cards {args.cards}"
        f" --seed {args.seed} --fraud-rate {args.fraud_rate:g}`",
        "",
        f"{args.days:g} simulated days of {args.cards} cards: {n_tx:,} transactions and "
        f"{n_labels:,} labels, sent by `riverguard history backfill`'s code to a learner and a "
        "scorer (REST, embedded servers); the baseline sends the same transactions to a bare "
        "FastAPI endpoint with the same client. CPU per record (µs) by process.",
        "",
        "| run | wall s | tx/s | labels/s | CPU µs per record |",
        "|---|---:|---:|---:|---|",
    ]
    for name, wall, tx_rate, label_rate, cpu in rows:
        spent = ", ".join(f"{k} {v:,.0f}" for k, v in cpu.items())
        lines.append(f"| {name} | {wall:.1f} | {tx_rate:,.0f} | {label_rate:,.0f} | {spent} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
