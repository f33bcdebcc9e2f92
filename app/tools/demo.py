"""``riverguard demo``: a simulated stream through the real service, a live view, a report.

The service runs as its own process (``riverguard serve``, API and stream workers) against the
embedded servers or configured URLs; this process generates the stream, replays most of it
through Kafka and a share through the REST API (labels arrive late, in event-time order), shows
progress from the service's own metrics, then writes ``riverguard-report.html``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from app.tools import demo_decisions, report
from app.tools.demo_service import DemoService
from simulator import generate as sim
from simulator import replay as sim_replay
from simulator import sinks
from simulator.records import Record


@dataclass(frozen=True)
class DemoOptions:
    days: float = 14.0
    cards: int = 2200
    seed: int = 7
    http_share: float = 0.2
    http_rate: float = 200.0  # REST requests per second, open loop
    out: Path = Path("riverguard-report.html")
    live: bool = True


@dataclass
class Progress:
    started: float = field(default_factory=time.monotonic)
    scored: float = 0.0
    learned: float = 0.0
    models: list[dict[str, Any]] = field(default_factory=list)


# REST senders, and the HTTP client's connections: at most this many requests in flight, so the
# client never queues requests for a connection (httpx's pool grows slow with a long queue)
HTTP_SENDERS = 32


async def run(service: DemoService, options: DemoOptions, console: Console) -> dict[str, Any]:
    config = sim.SimConfig(days=options.days, cards=options.cards, seed=options.seed)
    stream = sim.simulate(config)
    records = list(stream)
    console.print(
        f"generated {stream.summary.transactions:,} transactions, "
        f"{sum(stream.summary.labels.values()):,} labels over {options.days:g} days "
        f"(fraud rate {stream.summary.fraud_rate:.2%}, unseen campaign from "
        f"{stream.summary.campaign_onset})"
    )
    setup = demo_decisions.choose(records)
    await demo_decisions.install(service.url, service.api_key, setup)
    console.print(
        f"decision layer: budgets {demo_decisions.REVIEW_BUDGET:.1%} review, "
        f"{demo_decisions.DECLINE_BUDGET:.1%} decline; rule {demo_decisions.RULE_ID} "
        f"({setup.rule_expression}); card {setup.blocked_card} block-listed"
    )
    started = time.monotonic()
    http = sinks.HttpSink(service.url, service.api_key, timeout=30, max_connections=HTTP_SENDERS)
    kafka = sinks.KafkaSink(
        service.bootstrap, transactions_topic="transactions", labels_topic="labels"
    )
    split = sim_replay.Split(http, options.http_share, rate=options.http_rate, senders=HTTP_SENDERS)
    async with kafka, http:
        replaying = asyncio.create_task(
            sim_replay.replay(records, kafka, split=split, concurrency=64)
        )
        try:
            progress = await _watch(
                service, replaying, stream.summary.transactions, options, console
            )
            replayed = await replaying
        finally:
            if not replaying.done():  # interrupted: stop the replay before closing its sinks
                replaying.cancel()
                await asyncio.gather(replaying, return_exceptions=True)
    expected_tx = replayed.outcomes["transaction"]["accepted"]
    expected_labels = replayed.outcomes["label"]["accepted"]
    await _drain(service, expected_tx, expected_labels, console)
    elapsed = time.monotonic() - started
    data = await _report_data(
        service, records, options.http_rate, stream.summary, elapsed, replayed, setup
    )
    options.out.write_text(report.render(data), encoding="utf-8")
    _print_summary(console, data, options.out)
    del progress
    return {"summary": data.summary, "models": data.models, "report": str(options.out)}


async def _watch(
    service: DemoService,
    replaying: asyncio.Task[Any],
    total: int,
    options: DemoOptions,
    console: Console,
) -> Progress:
    progress = Progress()
    with Live(_progress_table(progress, total), console=console, refresh_per_second=4,
              transient=False) as live:  # fmt: skip
        while not replaying.done():
            await asyncio.wait([replaying], timeout=0.5)
            await _poll(service, progress)
            if options.live:
                live.update(_progress_table(progress, total))
        await _poll(service, progress)
        live.update(_progress_table(progress, total))
    return progress


async def _poll(service: DemoService, progress: Progress) -> None:
    try:
        samples = await service.samples()
        progress.scored = sum(
            v for k, v in samples.items() if k.startswith(("scored:", "replayed:"))
        )
        progress.learned = samples.get("labels:learned", 0.0) + samples.get("labels:relabeled", 0.0)
        progress.models = await service.models()
    except httpx.HTTPError:
        pass


def _progress_table(progress: Progress, total: int) -> Table:
    elapsed = max(time.monotonic() - progress.started, 1e-6)
    table = Table(title="riverguard demo", show_header=False)
    table.add_row("transactions scored", f"{progress.scored:,.0f} / {total:,}")
    table.add_row("rate", f"{progress.scored / elapsed:,.0f} tx/s")
    table.add_row("labels learned", f"{progress.learned:,.0f}")
    for m in progress.models:
        ap = (m.get("metrics") or {}).get("average_precision")
        shown = "–" if ap is None else f"{ap:.3f}"
        table.add_row(f"{m['role']} {m['name']} AP", shown)
    return table


async def _drain(service: DemoService, transactions: int, labels: int, console: Console) -> None:
    """Wait until the service has recorded every accepted transaction and label."""
    deadline = time.monotonic() + 120
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = await service.counts()
        if counts["transactions"] >= transactions and counts["labels"] >= labels:
            return
        await asyncio.sleep(0.5)
    console.print(f"[yellow]warning:[/] service still behind after 120 s: {counts}")


async def _report_data(
    service: DemoService,
    records: list[Record],
    http_rate: float,
    summary: sim.GenerationSummary,
    elapsed: float,
    replayed: sim_replay.ReplaySummary,
    setup: demo_decisions.Setup,
) -> report.ReportData:
    truth = {r.transaction_id: r.truth for r in records if r.kind == "transaction"}
    models = await service.models()
    conn = await asyncpg.connect(service.database_url)
    try:
        learned_rows = await conn.fetch(
            "SELECT g.is_fraud, g.evaluate, t.event_time, t.scores FROM learn_log g"
            " JOIN transactions t USING (transaction_id) ORDER BY g.seq"
        )
        scored_rows = await conn.fetch(
            "SELECT transaction_id, event_time, decision, score, decided, reasons"
            " FROM scored_transactions"
        )
        promotions = [
            json.loads(r["record"]) for r in await conn.fetch("SELECT record FROM promotions")
        ]
        dead = await service.dead_letters()
    finally:
        await conn.close()
    learned = [
        report.LearnedLabel(
            event_time=r["event_time"],
            is_fraud=r["is_fraud"],
            scores={s["name"]: float(s["score"]) for s in json.loads(r["scores"])},
            evaluate=r["evaluate"],
        )
        for r in learned_rows
    ]
    scored = []
    for r in scored_rows:
        t = truth.get(r["transaction_id"])
        fraud, scenario = (t.is_fraud, t.scenario) if t else (None, None)
        layer = demo_decisions.layer_of(r["decided"], r["reasons"])
        scored.append(
            report.ScoredTx(
                r["event_time"], r["decision"], float(r["score"]), fraud, scenario, layer
            )
        )
    decisions = {
        d: sum(1 for s in scored if s.decision == d) for d in ("approve", "review", "decline")
    }
    window = int(models[0].get("metrics", {}).get("window", 10_000)) if models else 10_000
    return report.ReportData(
        models=models,
        learned=learned,
        scored=scored,
        latencies_ms=replayed.latencies_ms,
        latency_rate=http_rate,
        window=window,
        promotions=promotions,
        campaign_onset=summary.campaign_onset,
        summary={
            "transactions scored": len(scored),
            "labels learned": len(learned),
            "wall time (s)": round(elapsed, 1),
            "throughput (tx/s)": round(len(scored) / max(elapsed, 1e-6), 1),
            # measured from each request's scheduled time, so queueing behind a slow one counts
            report.latency_title(http_rate): report.latency_summary(replayed.latencies_ms),
            "decisions": decisions,
            **demo_decisions.summary(scored_rows, setup),
            "promotions": len(promotions),
            "dead letters": dead,
            "rejected by the API": replayed.total("rejected"),
            "generated at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


def _print_summary(console: Console, data: report.ReportData, out: Path) -> None:
    table = Table(title="riverguard demo — summary")
    table.add_column("measure", no_wrap=True)
    table.add_column("value", justify="right")
    for key, value in data.summary.items():
        table.add_row(key, str(value))
    console.print(table)
    models = Table(title="models")
    for column in ("model", "role", "ROC AUC", "AP", "labels"):
        models.add_column(column, justify="right")
    for m in data.models:
        metrics = m.get("metrics") or {}
        models.add_row(
            str(m["name"]), str(m["role"]),
            _num(metrics.get("roc_auc")), _num(metrics.get("average_precision")),
            str(m.get("learned")),
        )  # fmt: skip
    console.print(models)
    console.print(f"report written to [bold]{out}[/]")


def _num(value: Any) -> str:
    return "–" if value is None else f"{float(value):.3f}"
