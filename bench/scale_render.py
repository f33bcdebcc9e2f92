"""Markdown for bench/scale.py: REST, Kafka, and learner/bundle/storage tables per layout."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from bench.api import held


def _rest(layouts: list[Any]) -> list[str]:
    lines = [
        "| layout | rate (req/s) | p50 ms | p99 ms | achieved req/s | errors | scorer cores |"
        " learner cores | valkey cores | postgres cores | scorer CPU per request (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for layout in layouts:
        for r in layout.rest:
            c = r.cores
            per = c.get("scorers", 0.0) / max(r.achieved, 1e-9) * 1000
            learner = f"{c['learner']:.2f}" if "learner" in c else "–"
            lines.append(
                f"| {layout.name} | {r.rate:g} | {r.percentile(50):.2f} | {r.percentile(99):.2f}"
                f" | {r.achieved:,.0f} | {r.errors} | {c.get('scorers', 0):.2f} | {learner}"
                f" | {c.get('valkey', 0):.2f} | {c.get('postgres', 0):.2f} | {per:.2f} |"
            )
    return lines


def _kafka(layouts: list[Any]) -> list[str]:
    one = layouts[0].kafka.burst_tx_s
    lines = [
        "| layout | burst tx/s | ratio to one process | bare tx/s | bare µs/tx |"
        " scorer CPU µs/tx | learner µs/tx | valkey µs/tx | postgres µs/tx | broker µs/tx |"
        " paced tx/s | paced p50 ms | paced p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for layout in layouts:
        k = layout.kafka
        us = {name: seconds / k.burst * 1e6 for name, seconds in k.burst_cpu.items()}
        learner = f"{us['learner']:,.0f}" if "learner" in us else "–"
        lines.append(
            f"| {layout.name} | {k.burst_tx_s:,.0f} | {k.burst_tx_s / one:.2f}"
            f" | {k.bare_tx_s:,.0f} | {k.bare_cpu / k.burst * 1e6:,.0f}"
            f" | {us.get('scorers', 0):,.0f} | {learner} | {us.get('valkey', 0):,.0f}"
            f" | {us.get('postgres', 0):,.0f} | {us.get('kafka', 0):,.0f} | {k.paced_rate:g}"
            f" | {k.paced_p50_ms:.1f} | {k.paced_p99_ms:.1f} |"
        )
    return lines


def _learner(layouts: list[Any]) -> list[str]:
    lines = [
        "| layout | labels | labels/s learned | learner CPU ms/label | bundles seen |"
        " scorer lag p99 ms | lag max ms | lag gauge max ms | bundle seq | bundle B |"
        " pack ms | write ms | load ms | Postgres B/tx | B/label |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for layout in layouts:
        k, b, s = layout.kafka, layout.bundle, layout.bytes
        per_label = (
            f"{k.paced_cpu['learner'] / k.labels * 1e3:.2f}" if "learner" in k.paced_cpu else "–"
        )
        learned = f"{k.labels_s:,.0f}" + ("" if k.labels_learned else " (not all)")
        split = "learner" in k.paced_cpu
        lag = (
            f"{k.lag_p99_ms:,.0f} | {k.lag_max_ms:,.0f} | {k.gauge_max * 1e3:.0f}"
            if split
            else "– | – | –"
        )
        cost = (
            f"{b.seq:,} | {b.size:,} | {b.pack_ms:.0f} | {b.write_ms:.1f} | {b.unpack_ms:.0f}"
            if b
            else "– | – | – | – | –"
        )
        lines.append(
            f"| {layout.name} | {k.labels:,} | {learned} | {per_label} | {k.bundles} | {lag}"
            f" | {cost} | {s.per_transaction:,.0f} | {s.per_label:,.0f} |"
        )
    return lines


def render(layouts: list[Any], seconds: float, took: float) -> str:
    k = layouts[0].kafka
    held_rates = ", ".join(f"{layout.name} {held(layout.rest):g}" for layout in layouts)
    return "\n".join([
        "## Scale-out: one process vs 1 and 2 scorers beside a learner (bench/scale.py)",
        "",
        f"Each layout on its own embedded broker, Valkey and PostgreSQL, all on this machine's"
        f" {os.cpu_count()} cores with the load generator. Scorers have ports of their own"
        " (the generator splits each rate evenly); `one process` is RIVERGUARD_ROLE=all.",
        "",
        f"### REST: open loop, {seconds:g} s per rate after a warm-up",
        "",
        *_rest(layouts),
        "",
        f"Highest rate held with p99 ≤ 10 ms: {held_rates} req/s.",
        "",
        f"### Kafka: a burst of {k.burst:,} transactions, then {k.paced_rate:g} tx/s paced",
        "",
        "Burst tx/s: from the first to the last score produced (after the record is stored);"
        " CPU per transaction over the burst, by process group; bare: the in-run baseline, an"
        " aiokafka consume + decode + commit loop over the same records. Paced: end-to-end latency from"
        " the transaction's record to its score's record, while labels arrive at the same rate.",
        "",
        *_kafka(layouts),
        "",
        "### Learner, bundles, storage",
        "",
        "Labels/s: from the first label sent to the learner's learning-log head covering all;"
        " learner CPU over the paced phase per label. Scorer lag: sampled every 0.2 s per"
        " scorer, how long a newer bundle than the one it scores with had been published."
        " Bundle: the newest one after the run, timed in the bench with the service's functions"
        " (best of 3). Postgres: bench/storage.py's sizes of the run's own database after VACUUM.",
        "",
        *_learner(layouts),
        "",
        f"Command: `.venv/bin/python -m bench.scale` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC,"
        f" {took:.0f} s in all).",
        "",
    ])  # fmt: skip
